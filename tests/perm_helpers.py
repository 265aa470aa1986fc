"""Helpers shared by the permission-flow tests: a service over a seeded database, chat through the router."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.commands import register_basic
from bot.handlers_actions import register_actions
from bot.identity import Directory
from bot.messages import Incoming, Reply
from bot.router import Router
from bot.settings import Settings
from skills.actions import ActionService
from skills.engine import PermissionEngine
from skills.rules import RulesHolder
from storage.models import ActionLedger, ActionRequest, Approval, AuditLog, Grant, Outbox
from storage.seed import seed_org
from tests.conftest import EXAMPLES

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def service(engine: Engine, rules: Path = EXAMPLES / "rules.yaml", **kw) -> ActionService:  # type: ignore[no-untyped-def]
    return ActionService(engine, PermissionEngine(RulesHolder(rules)), **kw)


def seeded(engine: Engine) -> Engine:
    seed_org(engine, EXAMPLES / "org.yaml")
    return engine


class Chat:
    """Talk to the router as any org user; remembers the last buttons each user was sent."""

    def __init__(
        self,
        engine: Engine,
        tmp_path: Path,
        rules: Path = EXAMPLES / "rules.yaml",
        escalate_after: str = "4h",
        webhook: str | None = None,
    ):
        settings = Settings(
            home=tmp_path,
            rules_file=rules,
            approval_escalate_after=escalate_after,
            action_webhook_url=webhook,
        )
        self.router = Router(Directory(engine))
        register_basic(self.router)
        self.service = register_actions(self.router, settings, engine)
        self.engine = engine
        self.buttons: dict[str, list[str]] = {}

    def _remember(self, replies: list[Reply], sender: str) -> None:
        for r in replies:
            flat = [b.payload for row in r.buttons for b in row]
            if flat:
                self.buttons[r.to or sender] = flat

    async def say(self, user: str, text: str, **ref: str) -> list[Reply]:
        replies = await self.router.handle(Incoming("terminal", user, text=text, ref=dict(ref)))
        self._remember(replies, user)
        return replies

    async def press(self, user: str, payload: str) -> list[Reply]:
        replies = await self.router.handle(Incoming("terminal", user, button=payload))
        self._remember(replies, user)
        return replies


def own(replies: list[Reply], user: str | None = None) -> str:
    """Text of the replies meant for the sender (to None) or for ``user``."""
    return "\n".join(r.text for r in replies if r.to == user)


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {
            m.__name__: len(list(s.exec(select(m))))
            for m in (ActionRequest, Approval, ActionLedger, Outbox, Grant, AuditLog)
        }


def later(**kw: float) -> datetime:
    return T0 + timedelta(**kw)
