"""/note and "记一下" through the router, with the correction buttons."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.commands import register_basic
from bot.handlers_signals import register_signals
from bot.identity import Directory
from bot.messages import Incoming, Reply
from bot.notices import notice_replies
from bot.router import Router
from skills.notices import Notice
from storage.models import Customer
from storage.seed import seed_org
from tests.conftest import EXAMPLES


@pytest.fixture
def router(sqlite_engine: Engine) -> Router:
    seed_org(sqlite_engine, EXAMPLES / "org.yaml")
    r = Router(Directory(sqlite_engine))
    register_basic(r)
    register_signals(r, sqlite_engine)
    return r


async def send(router: Router, text: str = "", button: str | None = None,
               user: str = "zhangsan") -> list[Reply]:
    return await router.handle(Incoming("terminal", user, text=text, button=button))


def tags(router: Router, cid: str) -> dict:
    with Session(router.directory.engine) as s:
        c = s.get(Customer, cid)
        assert c is not None
        return c.tags


async def test_note_in_plain_chinese_then_undo_by_button(router: Router) -> None:
    [reply] = await send(router, "帮我记一下：协和王主任说竞品报价低了10%")
    assert "已记录到「北京协和医院」" in reply.text and "竞品价差%：— → 10" in reply.text
    payloads = [b.payload for row in reply.buttons for b in row]
    assert payloads[0].startswith("note_undo:") and "note_drop:1:competitor_price_gap" in payloads
    assert tags(router, "bj-xiehe")["competitor_views"] == 2

    [undone] = await send(router, button=payloads[0])
    assert "已更正记录 #1" in undone.text
    assert tags(router, "bj-xiehe")["competitor_views"] == 1
    [again] = await send(router, button=payloads[0])
    assert "没有需要撤销" in again.text


async def test_note_command_usage_roles_and_foreign_customer(router: Router) -> None:
    assert "用法" in (await send(router, "/note"))[0].text
    assert "不是你负责的客户" in (await send(router, "/note 积水潭 货又没到"))[0].text
    assert "只对" in (await send(router, "/note 协和 投诉了", user="liumin"))[0].text  # admin
    [manager] = await send(router, "/note 积水潭 货又没到，拖了两周", user="wangjing")
    assert "到货延迟：— → 是" in manager.text
    assert "/note 客户 内容" in (await send(router, "/help"))[0].text


def test_notices_become_replies_to_their_user() -> None:
    notices = [Notice("zhangsan", "给自己"), Notice("wangjing", "给经理", buttons=((("看", "x:1"),),))]
    replies = notice_replies(notices, sender="zhangsan")
    assert replies[0].to is None and replies[1].to == "wangjing"
    assert replies[1].buttons[0][0].payload == "x:1"
