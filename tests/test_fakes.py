"""The fake platform servers speak the real client libraries' language.

Every test drives the real python-telegram-bot / wechatpy clients (no mocks) against the
in-process fakes in ``tests/fakes``.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
import warnings

import pytest
import requests
import xmltodict
from aiohttp import web
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Conflict, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning
from wechatpy.enterprise import WeChatClient, WeChatCrypto, parse_message
from wechatpy.exceptions import (
    APILimitedException,
    InvalidSignatureException,
    WeChatClientException,
)

from tests.fakes.telegram_api import FakeTelegramServer, UploadedFile
from tests.fakes.wecom_api import (
    FakeWeComServer,
    wecom_callback_request,
    wecom_file_xml,
    wecom_template_card_event_xml,
    wecom_text_xml,
    wecom_verify_request,
)

TOKEN = "123456:TEST-token"
CHAT = 5551234

# wechatpy's own test vector (see CHANNELS.md)
CB_TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_ID = "wx49f0ab532d5d035a"
SECRET = "app-secret"
AGENT_ID = 1000002


def make_bot(tg: FakeTelegramServer) -> Bot:
    return Bot(TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url)


def seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds (int today, timedelta with PTB_TIMEDELTA=1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# ===================================================================== Telegram


@pytest.mark.asyncio
async def test_get_me_and_send_message_with_inline_keyboard() -> None:
    async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
        me = await bot.get_me()
        assert me.is_bot and me.id == 123456 and me.username == "salesbot_test_bot"

        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("批准", callback_data="approve:42"),
                    InlineKeyboardButton("拒绝", callback_data="reject:42"),
                ]
            ]
        )
        first = await bot.send_message(CHAT, "审批请求 #42", reply_markup=keyboard)
        second = await bot.send_message(CHAT, "second")
        other = await bot.send_message(777, "other chat")

        assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
        assert first.chat.id == CHAT and first.from_user.id == me.id
        assert first.text == "审批请求 #42"
        assert first.reply_markup == keyboard
        assert second.reply_markup is None

        sent = tg.sent_messages(CHAT)
        assert [m["text"] for m in sent] == ["审批请求 #42", "second"]
        assert sent[0]["chat_id"] == CHAT
        buttons = sent[0]["reply_markup"]["inline_keyboard"][0]
        assert [b["callback_data"] for b in buttons] == ["approve:42", "reject:42"]
        assert tg.sent_texts(777) == ["other chat"]
        edited = await bot.edit_message_reply_markup(CHAT, first.message_id, reply_markup=None)
        assert edited.reply_markup is None and edited.edit_date is not None
        assert tg.edits(CHAT, method="editMessageReplyMarkup")[0]["message_id"] == first.message_id
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("审批请求 #42", chat_id=CHAT, message_id=first.message_id)
        assert tg.called("getMe") == 2  # Bot.initialize() + get_me()
        assert tg.called("sendMessage") == 3


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # raised by PTB itself
async def test_failure_injection_maps_to_ptb_exceptions() -> None:
    async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
        tg.fail_next("sendMessage", retry_after=7)
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(CHAT, "hi")
        assert seconds(info.value) == 7

        await bot.send_message(CHAT, "hi again")  # only the next call failed
        assert tg.sent_texts(CHAT) == ["hi again"]
        assert tg.failures[0][0] == "sendMessage" and tg.failures[0][2] == 429

        tg.fail_next("sendMessage", error_code=400, description="Bad Request: chat not found")
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(CHAT, "x")
        tg.fail_next("sendMessage", error_code=500, times=2, chat_id=999)
        await bot.send_message(CHAT, "other chat unaffected")
        for _ in range(2):
            with pytest.raises(NetworkError):
                await bot.send_message(999, "x")
        await bot.send_message(999, "recovered")

        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=99)


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # raised by PTB itself
async def test_rate_limits_answer_429_and_count_violations() -> None:
    async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
        tg.enforce_rate_limits(global_per_s=3, per_chat_per_s=1)
        await bot.send_message(1, "a")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(1, "b")  # same chat within 1 s
        assert seconds(info.value) >= 1
        await bot.send_message(2, "c")
        await bot.send_message(3, "d")
        with pytest.raises(RetryAfter):
            await bot.send_message(4, "e")  # 4th message within 1 s overall
        assert tg.rate_limit_violations == 2
        assert tg.sent_texts() == ["a", "c", "d"]


@pytest.mark.asyncio
async def test_get_file_downloads_pushed_document_and_send_document_upload() -> None:
    content = b"%PDF-1.4 fake price list \x00\xff"
    async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
        file_id = tg.push_document(CHAT, "价目表.pdf", content, "application/pdf")
        updates = await bot.get_updates(timeout=0)
        doc = updates[0].message.document
        assert (doc.file_id, doc.file_name, doc.mime_type) == (file_id, "价目表.pdf", "application/pdf")
        assert doc.file_size == len(content)

        tg_file = await bot.get_file(file_id)
        assert tg_file.file_path.startswith(tg.base_file_url + TOKEN + "/")
        assert await tg_file.download_as_bytearray() == bytearray(content)

        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("nope")

        msg = await bot.send_document(CHAT, document=b"col1,col2\n", filename="report.csv")
        upload = tg.sent_documents(CHAT)[0]["document"]
        assert isinstance(upload, UploadedFile)
        assert (upload.filename, upload.content) == ("report.csv", b"col1,col2\n")
        assert msg.document is not None and msg.document.file_name == "report.csv"
        again = await bot.get_file(msg.document.file_id)
        assert await again.download_as_bytearray() == bytearray(b"col1,col2\n")


@pytest.mark.asyncio
async def test_get_updates_long_poll_and_offset() -> None:
    async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
        assert await bot.get_updates(timeout=0) == ()

        async def push_later() -> int:
            await asyncio.sleep(0.3)
            return tg.push_text(CHAT, "hello bot", username="rep_wang")

        pusher = asyncio.create_task(push_later())
        start = time.monotonic()
        updates = await bot.get_updates(timeout=5)
        elapsed = time.monotonic() - start
        update_id = await pusher
        assert 0.2 < elapsed < 2.0  # waited for the push, returned early
        assert [u.update_id for u in updates] == [update_id]
        message = updates[0].message
        assert message.text == "hello bot" and message.chat.type == "private"
        assert message.from_user.username == "rep_wang"

        # not confirmed yet: delivered again; confirmed by offset: gone
        assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update_id]
        second = tg.push_text(CHAT, "/start")
        updates = await bot.get_updates(offset=update_id + 1, timeout=0)
        assert [u.update_id for u in updates] == [second]
        assert updates[0].message.entities[0].type == "bot_command"
        assert [u["update_id"] for u in tg.pending_updates] == [second]

        start = time.monotonic()
        assert await bot.get_updates(offset=second + 1, timeout=0.3) == ()
        assert time.monotonic() - start >= 0.25

        await bot.set_webhook("https://example.invalid/hook", secret_token="s3cret")
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        await bot.delete_webhook(drop_pending_updates=True)
        assert tg.pending_updates == [] and tg.webhook is None


@pytest.mark.asyncio
async def test_application_polling_receives_messages_and_callbacks() -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("批准", callback_data="approve:7")]])
        await update.effective_message.reply_text("请审批 #7", reply_markup=keyboard)

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(f"echo: {update.effective_message.text}")

    async def decide(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer("已批准")
        await query.edit_message_text(f"已批准 ({query.data})")

    async with FakeTelegramServer(token=TOKEN).running() as tg:
        app = Application.builder().token(TOKEN).base_url(tg.base_url).base_file_url(tg.base_file_url).build()
        app.add_handler(CommandHandler("start", start))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        app.add_handler(CallbackQueryHandler(decide, pattern=r"^(approve|reject):"))
        async with app:
            await app.updater.start_polling(timeout=2)
            await app.start()
            try:
                tg.push_text(CHAT, "客户拜访记录")
                await tg.wait_for("sendMessage", 1)
                assert tg.sent_texts(CHAT) == ["echo: 客户拜访记录"]

                tg.push_text(CHAT, "/start")
                await tg.wait_for("sendMessage", 2)
                card = tg.sent_messages(CHAT)[-1]
                assert card["reply_markup"]["inline_keyboard"][0][0]["text"] == "批准"
                card_id = tg.history(CHAT)[-1]["message_id"]

                query_id = tg.push_callback(CHAT, "approve:7", card_id)
                await tg.wait_for("editMessageText", 1)
                assert tg.answered_callbacks == [{"callback_query_id": query_id, "text": "已批准"}]
                edit = tg.edits(CHAT)[0]
                assert (edit["message_id"], edit["text"]) == (card_id, "已批准 (approve:7)")
                assert tg.message(CHAT, card_id)["text"] == "已批准 (approve:7)"
                assert "reply_markup" not in tg.message(CHAT, card_id)
            finally:
                await app.updater.stop()
                await app.stop()
        assert tg.called("deleteWebhook") == 1
        assert tg.pending_updates == []  # everything handled was confirmed


@pytest.mark.asyncio
async def test_made_updates_parse_for_webhook_use_and_unknown_methods_404() -> None:
    async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
        sent = await bot.send_message(
            CHAT, "pick", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
        )
        text_update = Update.de_json(tg.make_text_update(CHAT, "hi", user_id=42), bot)
        assert text_update.effective_user.id == 42 and text_update.message.text == "hi"
        cb_update = Update.de_json(tg.make_callback_update(CHAT, "a", sent.message_id), bot)
        assert cb_update.callback_query.message.message_id == sent.message_id
        assert cb_update.callback_query.message.reply_markup == sent.reply_markup
        assert tg.pending_updates == []  # make_* does not queue

        resp = await asyncio.to_thread(requests.post, f"{tg.base_url}{TOKEN}/noSuchMethod")
        assert resp.status_code == 404
        assert resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        resp = await asyncio.to_thread(requests.post, f"{tg.base_url}wrong:token/getMe")
        assert resp.status_code == 401

        tg.fail_next("sendMessage", retry_after=3)
        resp = await asyncio.to_thread(
            requests.post, f"{tg.base_url}{TOKEN}/sendMessage", data={"chat_id": 1, "text": "x"}
        )
        assert resp.status_code == 429
        assert resp.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        }


@pytest.mark.asyncio
async def test_deliver_to_webhook_posts_update_with_secret_header() -> None:
    received: list[tuple[str | None, dict]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/tg", hook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/tg"
    try:
        async with FakeTelegramServer(token=TOKEN).running() as tg, make_bot(tg) as bot:
            await bot.set_webhook(hook_url, secret_token="s3cret")
            assert tg.webhook is not None and tg.webhook["secret_token"] == "s3cret"
            assert await tg.deliver_to_webhook(tg.make_text_update(CHAT, "via webhook")) == 200
            secret, payload = received[0]
            assert secret == "s3cret"
            assert Update.de_json(payload, bot).message.text == "via webhook"
    finally:
        await runner.cleanup()


def test_telegram_run_in_thread_json_body() -> None:
    with FakeTelegramServer(token=TOKEN).run_in_thread() as tg:
        resp = requests.post(
            f"{tg.base_url}{TOKEN}/sendMessage",
            json={"chat_id": CHAT, "text": "123", "reply_markup": {"inline_keyboard": []}},
            timeout=5,
        )
        body = resp.json()
        assert body["ok"] and body["result"]["text"] == "123"
        tg.wait_for_sync("sendMessage")
        assert tg.sent_messages()[0]["text"] == "123"  # strings are never JSON-decoded


# ===================================================================== WeCom


class LocalWeChatClient(WeChatClient):
    """Fetches its token from API_BASE_URL (wechatpy hard-codes the official host)."""

    def fetch_access_token(self) -> dict:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


def make_client(wc: FakeWeComServer, secret: str = SECRET) -> LocalWeChatClient:
    client = LocalWeChatClient(CORP_ID, secret, timeout=5)
    client.API_BASE_URL = wc.api_base_url
    return client


def card_message(task_id: str) -> dict:
    return {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "button_interaction",
            "main_title": {"title": "折扣审批", "desc": "客户A 8折"},
            "task_id": task_id,
            "button_list": [
                {"text": "批准", "style": 1, "key": f"approve:{task_id}"},
                {"text": "拒绝", "style": 2, "key": f"reject:{task_id}"},
            ],
        },
    }


def test_wecom_send_text_card_and_update() -> None:
    with FakeWeComServer(CORP_ID, SECRET, agent_id=AGENT_ID).run_in_thread() as wc:
        client = make_client(wc)
        result = client.message.send_text(AGENT_ID, ["zhangsan", "lisi"], "你好，张三")
        assert result["errcode"] == 0 and result["msgid"]
        assert wc.token_requests == 1
        assert wc.sent_to("zhangsan")[0]["text"]["content"] == "你好，张三"
        assert wc.sent_texts("lisi") == ["你好，张三"]

        result = client.message.send(AGENT_ID, ["zhangsan"], msg=card_message("t1"))
        assert result["response_code"]
        assert wc.sent_cards("zhangsan")[0]["button_list"][0]["key"] == "approve:t1"

        client.post(
            "message/update_template_card",
            data={
                "userids": ["zhangsan"],
                "agentid": AGENT_ID,
                "response_code": "code-from-click-event",
                "button": {"replace_name": "已批准"},
            },
        )
        assert wc.card_updates[0]["button"] == {"replace_name": "已批准"}
        assert wc.token_requests == 1  # token cached by wechatpy
        wc.wait_for_sync("message/send", 2)

        with pytest.raises(WeChatClientException) as info:
            client.message.send_text(AGENT_ID + 1, "zhangsan", "wrong agent")
        assert info.value.errcode == 40056


def test_wecom_token_expiry_refreshes_and_retries_once() -> None:
    with FakeWeComServer(CORP_ID, SECRET).run_in_thread() as wc:
        client = make_client(wc)
        client.message.send_text(AGENT_ID, "zhangsan", "one")
        wc.expire_tokens()
        client.message.send_text(AGENT_ID, "zhangsan", "two")
        assert wc.token_requests == 2
        assert [e for e in wc.errors] == [("message/send", 42001)]
        assert wc.called("message/send") == 3  # one, two (42001), two (retried)
        assert wc.sent_texts() == ["one", "two"]

        wc.fail_next("message/send", errcode=40014)
        client.message.send_text(AGENT_ID, "zhangsan", "three")
        assert wc.token_requests == 3 and wc.sent_texts()[-1] == "three"

        with pytest.raises(WeChatClientException) as info:
            make_client(wc, secret="wrong").message.send_text(AGENT_ID, "zhangsan", "x")
        assert info.value.errcode == 40001


def test_wecom_rate_limit_and_other_errors() -> None:
    with FakeWeComServer(CORP_ID, SECRET, users={"zhangsan": "张三"}).run_in_thread() as wc:
        client = make_client(wc)
        wc.fail_next("message/send", errcode=45009)
        with pytest.raises(APILimitedException) as info:
            client.message.send_text(AGENT_ID, "zhangsan", "x")
        assert info.value.errcode == 45009
        assert wc.sent == []

        wc.fail_next("message/update_template_card", errcode=60020)
        with pytest.raises(WeChatClientException) as other:
            client.post("message/update_template_card", data={})
        assert not isinstance(other.value, APILimitedException)
        assert other.value.errcode == 60020

        result = client.message.send_text(AGENT_ID, ["zhangsan", "ghost"], "hi")
        assert result["invaliduser"] == "ghost"
        assert client.get("user/get", params={"userid": "zhangsan"})["name"] == "张三"


def test_wecom_media_get_and_upload() -> None:
    content = b"%PDF-1.4 quote \x00\x01"
    with FakeWeComServer(CORP_ID, SECRET).run_in_thread() as wc:
        client = make_client(wc)
        wc.add_media("MEDIA_1", content, "报价单.pdf", "application/pdf")
        res = client.get("media/get", params={"media_id": "MEDIA_1"})
        assert isinstance(res, requests.Response)
        assert res.content == content
        assert res.headers["Content-Type"] == "application/pdf"
        disposition = res.headers["Content-Disposition"]
        assert disposition.startswith("attachment; filename=")
        assert "filename*=UTF-8''%E6%8A%A5%E4%BB%B7%E5%8D%95.pdf" in disposition

        with pytest.raises(WeChatClientException) as info:
            client.get("media/get", params={"media_id": "nope"})
        assert info.value.errcode == 40007

        uploaded = client.post(
            "media/upload",
            params={"type": "file"},
            files={"media": ("report.csv", b"a,b\n1,2\n", "text/csv")},
        )
        res = client.get("media/get", params={"media_id": uploaded["media_id"]})
        assert res.content == b"a,b\n1,2\n"
        assert res.headers["Content-Disposition"] == 'attachment; filename="report.csv"'


@pytest.mark.asyncio
async def test_wecom_on_the_test_loop_with_to_thread() -> None:
    async with FakeWeComServer(CORP_ID, SECRET).running() as wc:
        client = make_client(wc)
        await asyncio.to_thread(client.message.send_markdown, AGENT_ID, "lisi", "**hi**")
        calls = await wc.wait_for("message/send")
        assert calls[0].body["markdown"]["content"] == "**hi**"
        assert calls[0].query["access_token"] in wc.valid_tokens


def test_wecom_callback_builders_decrypt_and_parse() -> None:
    crypto = WeChatCrypto(CB_TOKEN, AES_KEY, CORP_ID)

    # wechatpy's own test vector still holds for the installed crypto backend
    echo = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
    plain = crypto.check_signature(
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", echo
    )
    assert plain in (b"5927782489442352469", "5927782489442352469")

    params, expected = wecom_verify_request(CB_TOKEN, AES_KEY, CORP_ID)
    got = crypto.check_signature(
        params["msg_signature"], params["timestamp"], params["nonce"], params["echostr"]
    )
    assert (got.decode() if isinstance(got, bytes) else got) == expected

    def roundtrip(xml: str) -> str:
        params, body = wecom_callback_request(CB_TOKEN, AES_KEY, CORP_ID, xml)
        assert set(params) == {"msg_signature", "timestamp", "nonce"}
        envelope = xmltodict.parse(body)["xml"]
        assert envelope["ToUserName"] == CORP_ID and envelope["AgentID"] == str(AGENT_ID)
        out = crypto.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])
        return out.decode() if isinstance(out, bytes) else out

    text = parse_message(roundtrip(wecom_text_xml("zhangsan", "查询库存 <A&B>", msg_id=1234)))
    assert text.type == "text" and text.source == "zhangsan"
    assert text.content == "查询库存 <A&B>" and text.agent == AGENT_ID and text.id == 1234

    raw = xmltodict.parse(roundtrip(wecom_file_xml("zhangsan", "MEDIA_1", "合同.docx")))["xml"]
    assert (raw["MsgType"], raw["MediaId"], raw["Title"]) == ("file", "MEDIA_1", "合同.docx")
    assert type(parse_message(xmltodict.unparse({"xml": raw}))).__name__ == "UnknownMessage"

    xml = roundtrip(wecom_template_card_event_xml("zhangsan", "approve:t1", "t1", response_code="RC1"))
    raw = xmltodict.parse(xml)["xml"]
    assert raw["Event"] == "template_card_event" and raw["EventKey"] == "approve:t1"
    assert (raw["TaskId"], raw["CardType"], raw["ResponseCode"]) == (
        "t1",
        "button_interaction",
        "RC1",
    )
    assert parse_message(xml).source == "zhangsan"

    params, body = wecom_callback_request(CB_TOKEN, AES_KEY, CORP_ID, wecom_text_xml("a", "b"))
    with pytest.raises(InvalidSignatureException):
        crypto.decrypt_message(body, "0" * 40, params["timestamp"], params["nonce"])
