"""Chat side of the signals skills: /note and "记一下：...", its correction buttons, /health."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.messages import Button, Reply
from bot.notices import notice_replies
from bot.router import Router, Turn
from skills.signals import texts
from skills.signals.health import HealthConfig, recompute_health
from skills.signals.llm_extract import Extractor
from skills.signals.notes import record_note, undo_note
from storage.lookup import reports_to
from storage.models import Product, Role, User
from storage.types import utcnow


def register_signals(router: Router, engine: Engine, health: HealthConfig | None = None,
                     extractor: Extractor | None = None) -> None:
    """``extractor``: the LLM note reader when configured; None = the rule-based one."""
    writers = (Role.rep, Role.manager)
    health = health or HealthConfig()

    def product_names() -> dict[str, str]:
        with Session(engine) as s:
            return {p.code: p.name for p in s.exec(select(Product))}

    async def note(turn: Turn, text: str) -> list[Reply]:
        if not text.strip():
            return [Reply(texts.NOTE_USAGE)]
        out = await asyncio.to_thread(record_note, engine, turn.user.id, text, extractor=extractor)
        buttons = tuple(Button(label, payload) for label, payload in out.buttons())
        first = Reply(out.text(product_names()), buttons=(buttons,) if buttons else ())
        return [first, *notice_replies(out.notices, turn.user.id)]

    @router.command("note", "记录客户反馈（自动识别竞品、投诉、到货延迟、意向、情绪）", roles=writers,
                    usage="客户 内容")
    async def note_command(turn: Turn) -> list[Reply]:
        return await note(turn, turn.args)

    @router.intent(r"^\s*(?:帮我|麻烦)?(?:记一下|记录一下|记下|记个|备注)\s*[:：,，]?", roles=writers)
    async def note_intent(turn: Turn) -> list[Reply]:
        return await note(turn, turn.args)

    async def correct(turn: Turn, signal: str, tag: str | None) -> list[Reply]:
        if not signal.isdigit():
            return [Reply(texts.UNDO_UNKNOWN.format(id=signal))]
        out = await asyncio.to_thread(undo_note, engine, int(signal), turn.user.id, tag=tag)
        return [Reply(out.text), *notice_replies(out.notices, turn.user.id)]

    @router.button("note_undo")
    async def undo_button(turn: Turn) -> list[Reply]:
        return await correct(turn, turn.args, None)

    @router.button("note_drop")
    async def drop_button(turn: Turn) -> list[Reply]:
        signal, _, tag = turn.args.partition(":")
        return await correct(turn, signal, tag or None)

    @router.command("health", "查看商机健康度（经理看团队）", roles=writers)
    async def health_command(turn: Turn) -> Reply:
        scores = await asyncio.to_thread(recompute_health, engine, utcnow(), health)
        with Session(engine) as s:
            users = {u.id: u for u in s.exec(select(User))}
        me = turn.user.id
        mine = [h for h in scores if h.owner_id == me or reports_to(users, h.owner_id, me)]
        if not mine:
            return Reply(texts.HEALTH_NONE)
        lines = [texts.HEALTH_MINE_HEADER.format(count=len(mine))]
        for h in mine[:20]:
            who = "" if h.owner_id == me else f"{users[h.owner_id].name}｜" if h.owner_id in users else ""
            lines.append(who + texts.HEALTH_MINE_ITEM.format(opp=h.opportunity_id, customer=h.customer_name,
                                                             stage=h.stage, health=h.explain()))
        return Reply("\n".join(lines))

