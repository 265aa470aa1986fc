"""Whole conversations over the real wechatpy against the fake WeCom API, callbacks over a real socket."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from bot import texts
from bot.channels.wecom import WeComChannel, event_keys
from bot.messages import Button, Reply
from storage.models import ProcessedUpdate
from tests.channel_support import (
    AES_KEY,
    AGENT_ID,
    CB_TOKEN,
    CORP_ID,
    WECOM_SECRET,
    Recorder,
    client,
    eventually,
    running_bot,
    settings_for,
    wecom_settings,
)
from tests.fakes.wecom_api import (
    FakeWeComServer,
    wecom_callback_request,
    wecom_file_xml,
    wecom_template_card_event_xml,
    wecom_text_xml,
    wecom_verify_request,
)

VECTOR_ECHO = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="


def fake() -> FakeWeComServer:
    return FakeWeComServer(CORP_ID, WECOM_SECRET, agent_id=AGENT_ID)


async def post(http: httpx.AsyncClient, xml: str, *, corp_id: str = CORP_ID) -> httpx.Response:
    params, body = wecom_callback_request(CB_TOKEN, AES_KEY, corp_id, xml)
    return await http.post("/wecom/callback", params=params, content=body)


async def test_url_verification_with_the_test_vector_and_round_trips(tmp_path: Path) -> None:
    async with fake().running() as wc, running_bot(settings_for(tmp_path, **wecom_settings(wc))) as server, \
            client(server) as http:
        resp = await http.get("/wecom/callback", params={
            "msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780",
            "nonce": "437374425", "echostr": VECTOR_ECHO})  # httpx percent-encodes "+" as %2B
        assert (resp.status_code, resp.text) == (200, "5927782489442352469")
        for _ in range(3):  # encryption has a random prefix: round trips
            params, expected = wecom_verify_request(CB_TOKEN, AES_KEY, CORP_ID)
            resp = await http.get("/wecom/callback", params=params)
            assert (resp.status_code, resp.text) == (200, expected)
        params["msg_signature"] = "0" * 40
        assert (await http.get("/wecom/callback", params=params)).status_code == 403


async def test_a_rep_asks_gets_an_answer_and_strangers_are_turned_away(tmp_path: Path) -> None:
    rec = Recorder()
    async with fake().running() as wc, \
            running_bot(settings_for(tmp_path, **wecom_settings(wc)), setup=rec.install) as server, \
            client(server) as http:
        resp = await post(http, wecom_text_xml("ZhangSan", "集采中选结果啥时候执行？"))
        assert (resp.status_code, resp.text) == (200, "")  # answered at once, empty body
        await wc.wait_for("message/send", 1)
        answer = "关于「集采中选结果啥时候执行？」：集采中选结果自 2027 年 1 月 1 日起执行。[1]"
        assert wc.sent_texts("ZhangSan") == [answer]

        await post(http, wecom_text_xml("Stranger", "/help"))
        await wc.wait_for("message/send", 2)
        assert wc.sent_texts("Stranger") == [texts.UNKNOWN_ACCOUNT]
        assert wc.token_requests == 1  # token fetched at start, cached since


async def test_retried_callbacks_and_double_clicks_are_handled_once_and_the_card_updated(
        tmp_path: Path, db_url: str) -> None:
    rec = Recorder()
    async with fake().running() as wc, \
            running_bot(settings_for(tmp_path, db_url, **wecom_settings(wc)), setup=rec.install) as server, \
            client(server) as http:
        card = Reply("审批请求 #7\n张三申请给协和医院发 300 元补偿包",
                     buttons=((Button("批准", "approve:7"), Button("拒绝", "reject:7")),))
        assert await server.runtime.delivery.push("wangjing", card)
        sent = wc.sent_cards("WangJing")[0]
        assert sent["card_type"] == "button_interaction"
        assert sent["main_title"]["title"] == "审批请求 #7"
        assert [b["key"] for b in sent["button_list"]] == ["approve:7", "reject:7"]

        click = wecom_template_card_event_xml("WangJing", "approve:7", sent["task_id"], response_code="RC-1")
        params, body = wecom_callback_request(CB_TOKEN, AES_KEY, CORP_ID, click)
        for _ in range(2):  # WeCom retried: same callback twice
            assert (await http.post("/wecom/callback", params=params, content=body)).text == ""
        later = wecom_template_card_event_xml("WangJing", "approve:7", sent["task_id"], response_code="RC-2",
                                              create_time=1)  # a second click on the same card
        await post(http, later)
        await wc.wait_for("message/update_template_card", 1)
        await eventually(lambda: len(wc.sent_texts("ZhangSan")) == 1)
        assert rec.presses == [("wangjing", "7")]
        update = wc.card_updates[0]
        assert update["response_code"] == "RC-1" and update["userids"] == ["WangJing"]
        assert update["button"] == {"replace_name": "已批准 #7"} and update["agentid"] == AGENT_ID
        # the label is short: the full answer follows as a message
        assert wc.sent_texts("WangJing") == ["已批准 #7\n申请人：张三，300 元补偿包"]
        assert wc.sent_texts("ZhangSan") == ["你的申请 #7 已被批准。"]

        text = wecom_text_xml("ZhangSan", "/whoami", msg_id=424242)
        await post(http, text)
        await post(http, text)
        await eventually(lambda: len(wc.sent_texts("ZhangSan")) == 2)
        with Session(server.runtime.app.engine) as session:
            keys = set(session.exec(select(ProcessedUpdate.key)))
        assert "wecom:msg:424242" in keys and f"wecom:press:WangJing:{sent['task_id']}:approve:7" in keys
        assert len(wc.sent_texts("ZhangSan")) == 2


async def test_admin_file_is_downloaded_and_ingested_a_rep_file_is_refused(tmp_path: Path) -> None:
    rec = Recorder()
    async with fake().running() as wc, \
            running_bot(settings_for(tmp_path, **wecom_settings(wc)), setup=rec.install) as server, \
            client(server) as http:
        content = "第三条 DRG 付费自 2027 年起覆盖全部二级以上医院。".encode()
        wc.add_media("MEDIA_1", content, "江苏DRG通知.txt", "text/plain")
        await post(http, wecom_file_xml("LiuMin", "MEDIA_1", "江苏DRG通知.txt"))
        await wc.wait_for("message/send", 1)
        assert rec.files == [("liumin", "江苏DRG通知.txt", content, "")]
        assert wc.called("media/get") == 1

        wc.add_media("MEDIA_2", b"secret", "x.pdf", "application/pdf")
        await post(http, wecom_file_xml("ZhangSan", "MEDIA_2", "x.pdf"))
        await wc.wait_for("message/send", 2)
        assert wc.sent_texts("ZhangSan") == [texts.FILE_NOT_ALLOWED]
        assert wc.called("media/get") == 1 and len(rec.files) == 1  # never downloaded


async def test_45009_is_backed_off_and_the_message_delivered(tmp_path: Path) -> None:
    rec = Recorder()
    async with fake().running() as wc, \
            running_bot(settings_for(tmp_path, **wecom_settings(wc)), setup=rec.install) as server, \
            client(server) as http:
        wc.fail_next("message/send", errcode=45009, times=2)
        wc.expire_tokens()  # and the token expired meanwhile: wechatpy refreshes it
        await post(http, wecom_text_xml("ZhangSan", "/whoami"))
        await eventually(lambda: len(wc.sent_texts("ZhangSan")) == 1, timeout=10)
        assert "张三" in wc.sent_texts("ZhangSan")[0]
        assert [e[1] for e in wc.errors].count(45009) == 2
        metrics = (await http.get("/metrics")).text
        assert 'salesbot_send_failures_total{channel="wecom",reason="RateLimited"} 2.0' in metrics


@pytest.mark.parametrize("case", ["forged", "corp", "malformed", "inner", "oversized", "no-params"])
async def test_bad_callbacks_are_refused_with_no_side_effect(tmp_path: Path, case: str) -> None:
    rec = Recorder()
    async with fake().running() as wc, \
            running_bot(settings_for(tmp_path, **wecom_settings(wc)), setup=rec.install) as server, \
            client(server) as http:
        params, body = wecom_callback_request(CB_TOKEN, AES_KEY, CORP_ID, wecom_text_xml("ZhangSan", "hi"))
        expected = 400
        if case == "forged":
            params["msg_signature"] = "f" * 40
            expected = 403
        elif case == "corp":
            params, body = wecom_callback_request(CB_TOKEN, AES_KEY, "wxOTHERCORP000000",
                                                  wecom_text_xml("ZhangSan", "hi"))
            expected = 403
        elif case == "malformed":
            body = b"<xml><Encrypt>abc</Encrypt"
        elif case == "inner":
            params, body = wecom_callback_request(CB_TOKEN, AES_KEY, CORP_ID, "<xml><FromUserName>oops")
        elif case == "oversized":
            body = b"<xml><Encrypt>" + b"A" * 70_000 + b"</Encrypt></xml>"
        else:
            params = {}
        resp = await http.post("/wecom/callback", params=params, content=body)
        assert resp.status_code == expected
        metrics = (await http.get("/metrics")).text
        with Session(server.runtime.app.engine) as session:
            assert session.exec(select(ProcessedUpdate)).all() == []
    assert wc.sent == [] and rec.files == [] and "salesbot_messages_in_total{" not in metrics


def test_dedupe_keys_follow_the_platform_retry_rules() -> None:
    assert event_keys({"MsgId": "1", "FromUserName": "a"}) == ["wecom:msg:1"]
    keys = event_keys({"FromUserName": "a", "CreateTime": "9", "Event": "template_card_event",
                       "EventKey": "approve:7", "TaskId": "t1"})
    assert keys == ["wecom:evt:a:9:template_card_event:approve:7", "wecom:press:a:t1:approve:7"]


def test_long_card_text_goes_first_as_text() -> None:
    channel = WeComChannel.__new__(WeComChannel)
    card, complete = channel.card(Reply("短标题\n" + "很长的说明。" * 50, buttons=((Button("好", "ok:1"),),)))
    assert not complete and card["template_card"]["main_title"]["title"] == "短标题"
    card, complete = channel.card(Reply("审批 #1\n300 元", buttons=((Button("批准", "approve:1"),),)))
    assert complete and card["template_card"]["sub_title_text"] == "300 元"


async def test_upload_link_from_wecom_works_once_for_admins_only(tmp_path: Path) -> None:
    rec = Recorder()
    async with fake().running() as wc:
        settings = settings_for(tmp_path, public_url="https://bot.example.cn", **wecom_settings(wc))
        async with running_bot(settings, setup=rec.install) as server, client(server) as http:
            await post(http, wecom_text_xml("ZhangSan", "/upload"))
            await wc.wait_for("message/send", 1)
            assert "只对知识管理员开放" in wc.sent_texts("ZhangSan")[0]

            await post(http, wecom_text_xml("LiuMin", "/upload"))
            await wc.wait_for("message/send", 2)
            link = wc.sent_texts("LiuMin")[0].split("\n")[-1]
            assert link.startswith("https://bot.example.cn/upload/")
            path = link.removeprefix("https://bot.example.cn")
            page = await http.get(path)
            assert page.status_code == 200 and "刘敏" in page.text
            doc = {"file": ("DRG通知.md", "# 通知\n第一条 ……".encode(), "text/markdown")}
            done = await http.post(path, files=doc, data={"note": "江苏"})
            assert done.status_code == 200 and "已收到《DRG通知.md》" in done.text
            assert rec.files == [("liumin", "DRG通知.md", "# 通知\n第一条 ……".encode(), "江苏")]
            assert (await http.post(path, files=doc)).status_code == 404  # used up
            assert (await http.get("/upload/forged-token")).status_code == 404


async def test_unsupported_message_kinds_are_answered_strangers_only_told_to_register(tmp_path: Path) -> None:
    def image(user: str, msg_id: int) -> str:
        return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]>"
                f"</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                f"<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[M]]></MediaId>"
                f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>")

    async with fake().running() as wc, running_bot(settings_for(tmp_path, **wecom_settings(wc))) as server, \
            client(server) as http:
        await post(http, image("ZhangSan", 9001))
        await post(http, image("Stranger", 9002))
        await wc.wait_for("message/send", 2)
        assert wc.sent_texts("ZhangSan") == [texts.UNSUPPORTED_MESSAGE]
        assert wc.sent_texts("Stranger") == [texts.UNKNOWN_ACCOUNT]


async def test_an_approval_end_to_end_over_wecom(tmp_path: Path) -> None:
    """The permission flow (issue 5) over WeCom: card to the manager, click, card updated."""
    async with fake().running() as wc, running_bot(settings_for(tmp_path, **wecom_settings(wc))) as server, \
            client(server) as http:
        await post(http, wecom_text_xml("ZhangSan", "/comp 北医三院 800 设备故障"))
        await eventually(lambda: len(wc.sent_cards("WangJing")) == 1)
        card = wc.sent_cards("WangJing")[0]
        assert card["main_title"]["title"].startswith("【审批请求 #1】")
        assert any("800 元" in t for t in wc.sent_texts("WangJing"))  # the whole card text first
        approve = card["button_list"][0]["key"]
        told = len(wc.sent_texts("ZhangSan"))
        click = wecom_template_card_event_xml("WangJing", approve, card["task_id"], response_code="RC")
        await post(http, click)
        await wc.wait_for("message/update_template_card", 1)
        await eventually(lambda: len(wc.sent_texts("ZhangSan")) > told)
        assert wc.card_updates[0]["button"]["replace_name"].startswith("✅") or \
            "批准" in wc.card_updates[0]["button"]["replace_name"]
        assert "王静 批准了你的申请" in wc.sent_texts("ZhangSan")[told]
