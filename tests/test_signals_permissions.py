"""Signals feed the permission rules: a rep's note can open a grant, and undoing it closes the grant."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.messages import Incoming, Reply
from bot.settings import Settings
from storage.seed import seed_org
from tests.conftest import EXAMPLES


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> App:
    application = build_app(Settings(home=tmp_path, database_url=db_url, rules_file=EXAMPLES / "rules.yaml"))
    seed_org(application.engine, EXAMPLES / "org.yaml")
    return application


async def say(app: App, user: str, text: str = "", button: str | None = None) -> list[Reply]:
    return await app.router.handle(Incoming("terminal", user, text=text, button=button))


def joined(replies: list[Reply]) -> str:
    return "\n".join(r.text for r in replies)


async def test_note_opens_the_pricing_grant_and_undo_closes_it(app: App) -> None:
    before = joined(await say(app, "zhangsan", "/price 协和 -12 竞品报价更低"))
    assert "审批" in before  # 12% is above the rep's baseline: it needs the manager

    note = await say(app, "zhangsan", "记一下：协和王主任说竞品报价低了10%，还看了竞品官网三次")
    text = joined(note)
    assert "竞品浏览/报价次数：1 → 4" in text
    assert "🔓 新授权：规则 competitor-price" in text and "±15%" in text

    after = joined(await say(app, "zhangsan", "/price 协和 -11 竞品又降价了"))
    assert "✅ 已为北京协和医院办理调价 -11%" in after and "competitor-price" in after

    undo = next(b.payload for r in note for row in r.buttons for b in row if "全部撤销" in b.text)
    closed = joined(await say(app, "zhangsan", button=undo))
    assert "收回" in closed or "关闭" in closed
    again = joined(await say(app, "zhangsan", "/price 协和 -13 竞品报价更低"))
    assert "审批" in again
