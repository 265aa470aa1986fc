"""Whole conversations over the real python-telegram-bot against the fake Bot API server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot import texts
from bot.binding import create_invite
from bot.messages import Button, Reply
from tests.channel_support import (
    WANGJING_TG,
    ZHANGSAN_TG,
    Recorder,
    client,
    eventually,
    running_bot,
    settings_for,
    telegram_settings,
)
from tests.fakes.telegram_api import FakeTelegramServer

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def test_a_rep_asks_and_gets_an_answer_and_an_unknown_account_is_turned_away(tmp_path: Path) -> None:
    rec = Recorder()
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg)), setup=rec.install):
        tg.push_text(ZHANGSAN_TG, "集采中选结果啥时候执行？")
        await tg.wait_for("sendMessage", 1)
        answer = "关于「集采中选结果啥时候执行？」：集采中选结果自 2027 年 1 月 1 日起执行。[1]"
        assert tg.sent_texts(ZHANGSAN_TG) == [answer]

        tg.push_text(ZHANGSAN_TG, "/whoami")
        await tg.wait_for("sendMessage", 2)
        assert "张三" in tg.sent_texts(ZHANGSAN_TG)[-1]

        tg.push_text(999001, "/help")
        tg.push_text(999001, "集采啥时候执行")
        await tg.wait_for("sendMessage", 4)
        assert tg.sent_texts(999001) == [texts.UNKNOWN_ACCOUNT, texts.UNKNOWN_ACCOUNT]


async def test_bind_with_a_one_time_code_then_admin_uploads_a_document(tmp_path: Path, db_url: str) -> None:
    rec = Recorder()
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg:
        settings = settings_for(tmp_path, db_url, **telegram_settings(tg))
        async with running_bot(settings, setup=rec.install) as server:
            invite = create_invite(server.runtime.app.engine, "liumin", timedelta(hours=1))
            tg.push_text(880001, "/bind WRONG-CODE")
            tg.push_text(880001, f"/bind {invite.code.lower()}")
            await tg.wait_for("sendMessage", 2)
            welcome = texts.BIND_OK.format(name="刘敏", role="知识管理员")
            assert tg.sent_texts(880001) == [texts.BIND_FAILED, welcome]

            tg.push_text(880002, f"/bind {invite.code}")  # used already
            tg.push_text(880001, "/bind AAAA-BBBB")  # a bound account
            await tg.wait_for("sendMessage", 4)
            assert tg.sent_texts(880002) == [texts.BIND_FAILED]
            assert tg.sent_texts(880001)[-1] == texts.BIND_ALREADY.format(name="刘敏")

            content = "第一条 本办法自 2027 年 1 月 1 日起施行。".encode()
            tg.push_document(880001, "集采执行通知.txt", content, "text/plain", caption="政策")
            await tg.wait_for("sendMessage", 5)
            assert rec.files == [("liumin", "集采执行通知.txt", content, "政策")]
            assert "已收到《集采执行通知.txt》" in tg.sent_texts(880001)[-1]
            assert tg.called("getFile") == 1

            tg.push_document(ZHANGSAN_TG, "私人文件.pdf", b"%PDF-1.4", "application/pdf")  # a rep: refused
            await tg.wait_for("sendMessage", 6)
            assert tg.sent_texts(ZHANGSAN_TG) == [texts.FILE_NOT_ALLOWED]
            assert tg.called("getFile") == 1 and len(rec.files) == 1  # never downloaded


async def test_a_button_pressed_twice_is_handled_once_and_the_card_is_edited(tmp_path: Path) -> None:
    rec = Recorder()
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg)), setup=rec.install) as server:
        card = Reply("审批请求 #7\n张三申请给协和医院发 300 元补偿包",
                     buttons=((Button("批准", "approve:7"), Button("拒绝", "reject:7")),))
        assert await server.runtime.delivery.push("wangjing", card)
        sent = tg.sent_messages(WANGJING_TG)[0]
        row = sent["reply_markup"]["inline_keyboard"][0]
        assert [b["callback_data"] for b in row] == ["approve:7", "reject:7"]
        card_id = tg.history(WANGJING_TG)[-1]["message_id"]

        first = tg.push_callback(WANGJING_TG, "approve:7", card_id)
        second = tg.push_callback(WANGJING_TG, "approve:7", card_id)  # a double tap
        await tg.wait_for("answerCallbackQuery", 2)
        await tg.wait_for("editMessageText", 1)
        await tg.wait_for("sendMessage", 2)
        assert {a["callback_query_id"] for a in tg.answered_callbacks} == {first, second}  # both answered
        assert rec.presses == [("wangjing", "7")]  # handled once
        assert tg.message(WANGJING_TG, card_id)["text"] == "已批准 #7\n申请人：张三，300 元补偿包"
        assert "reply_markup" not in tg.message(WANGJING_TG, card_id)  # buttons gone
        assert tg.sent_texts(ZHANGSAN_TG) == ["你的申请 #7 已被批准。"]
        registry = server.runtime.metrics.registry
        await eventually(lambda: registry.get_sample_value("salesbot_duplicates_total",
                                                           {"channel": "telegram"}) == 1.0)
        assert rec.presses == [("wangjing", "7")]


async def test_rate_limit_429_is_waited_out_and_the_reply_delivered(tmp_path: Path) -> None:
    rec = Recorder()
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg)), setup=rec.install) as server:
        tg.fail_next("sendMessage", retry_after=1)
        tg.fail_next("sendMessage", error_code=502)
        tg.push_text(ZHANGSAN_TG, "/whoami")
        await tg.wait_for("sendMessage", 3, timeout=10)
        assert [f[2] for f in tg.failures] == [429, 502]
        assert len(tg.sent_texts(ZHANGSAN_TG)) == 1 and "张三" in tg.sent_texts(ZHANGSAN_TG)[0]
        async with client(server) as http:
            metrics = (await http.get("/metrics")).text
        assert 'salesbot_send_failures_total{channel="telegram",reason="RateLimited"} 1.0' in metrics
        assert 'salesbot_messages_out_total{channel="telegram"} 1.0' in metrics


async def test_long_markdown_answers_are_split_and_escaped(tmp_path: Path) -> None:
    sentence = "第二条 集采中选产品按中选价格执行（含税），医疗机构不得二次议价。"

    def setup(app):
        async def long_answer(turn):
            return Reply("**结论**：" + sentence * 300, markdown=True)
        app.router.on_text(long_answer)

    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg)), setup=setup):
        tg.push_text(ZHANGSAN_TG, "集采规则")
        await tg.wait_for("sendMessage", 3)
        sent = tg.sent_messages(ZHANGSAN_TG)
        assert len(sent) == 3 and all(m["parse_mode"] == "MarkdownV2" for m in sent)
        assert sent[0]["text"].startswith("*结论*：第二条")
        assert all(m["text"].endswith("医疗机构不得二次议价。") for m in sent)  # sentence boundaries
        assert "（含税），" in sent[1]["text"] and "\\(" not in sent[1]["text"]
        assert all(len(m["text"]) <= 4096 for m in sent)


async def test_webhook_mode_same_update_twice_is_handled_once(tmp_path: Path) -> None:
    rec = Recorder()
    secret = "hook-secret-123"
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg:
        settings = settings_for(tmp_path, telegram_webhook_secret=secret, public_url="https://bot.example.cn",
                                **telegram_settings(tg))
        async with running_bot(settings, setup=rec.install) as server:
            assert tg.webhook is not None
            assert tg.webhook["url"] == f"https://bot.example.cn/telegram/webhook/{secret}"
            assert tg.webhook["secret_token"] == secret
            url = f"{server.url}/telegram/webhook/{secret}"

            update = tg.make_text_update(ZHANGSAN_TG, "集采啥时候执行")
            assert await tg.deliver_to_webhook(update, url) == 200
            assert await tg.deliver_to_webhook(update, url) == 200  # Telegram retried
            await tg.wait_for("sendMessage", 1)
            assert await tg.deliver_to_webhook(tg.make_text_update(ZHANGSAN_TG, "/whoami"), url) == 200
            await tg.wait_for("sendMessage", 2)
            assert len(tg.sent_texts(ZHANGSAN_TG)) == 2

            wrong = f"{server.url}/telegram/webhook/not-the-secret"
            assert await tg.deliver_to_webhook(tg.make_text_update(ZHANGSAN_TG, "/whoami"), wrong) == 404
            async with client(server) as http:
                assert (await http.post(url.replace(server.url, ""), content=b"{not json")).status_code == 400
                health = (await http.get("/healthz")).json()
            assert health == {"status": "ok", "channels": {"telegram": "webhook"}}
            await eventually(lambda: tg.called("sendMessage") == 2)
            assert tg.called("getUpdates") == 0


async def test_periodic_jobs_push_their_replies(tmp_path: Path) -> None:
    runs: list[object] = []

    def setup(app):
        @app.api.every(0.05)
        async def remind(now):
            runs.append(now)
            return [Reply("审批 #9 已等待 24 小时，请尽快处理。", to="wangjing")] if len(runs) == 1 else []

    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg)), setup=setup):
        await tg.wait_for("sendMessage", 1)
        await eventually(lambda: len(runs) >= 3)
        assert tg.sent_texts(WANGJING_TG) == ["审批 #9 已等待 24 小时，请尽快处理。"]


async def test_a_send_failing_past_the_retry_window_is_parked_and_sent_later(tmp_path: Path) -> None:
    from sqlmodel import Session, select

    from storage.models import PendingSend

    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg)), retry_window=0.3, max_backoff=0.1,
                        outbox_interval=0.2) as server:
        tg.fail_next("sendMessage", error_code=502, times=6, chat_id=ZHANGSAN_TG)
        tg.push_text(ZHANGSAN_TG, "/whoami")
        await eventually(lambda: len(tg.sent_texts(ZHANGSAN_TG)) == 1, timeout=15)
        assert "张三" in tg.sent_texts(ZHANGSAN_TG)[0]
        assert sum(1 for f in tg.failures if f[2] == 502) == 6
        await eventually(lambda: not Session(server.runtime.app.engine).exec(select(PendingSend)).all())


async def test_an_approval_end_to_end_over_telegram(tmp_path: Path) -> None:
    """The permission flow (issue 5) over the real channel: card to the manager, decision edits it."""
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg, \
            running_bot(settings_for(tmp_path, **telegram_settings(tg))):
        tg.push_text(ZHANGSAN_TG, "/comp 北医三院 800 设备故障")
        await eventually(lambda: len(tg.sent_messages(WANGJING_TG)) == 1)
        assert "已提交给 王静 审批" in tg.sent_texts(ZHANGSAN_TG)[0]
        told = len(tg.sent_texts(ZHANGSAN_TG))  # the request, plus any grants the rules opened
        card = tg.sent_messages(WANGJING_TG)[0]
        assert "800 元" in card["text"]
        approve = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        card_id = tg.history(WANGJING_TG)[-1]["message_id"]
        tg.push_callback(WANGJING_TG, approve, card_id)
        await tg.wait_for("editMessageText", 1)
        await eventually(lambda: len(tg.sent_texts(ZHANGSAN_TG)) > told)
        edited = tg.message(WANGJING_TG, card_id)
        assert "你已批准" in edited["text"] and "reply_markup" not in edited
        assert "王静 批准了你的申请" in tg.sent_texts(ZHANGSAN_TG)[told]
