"""Binding a chat account to an org user with a one-time code.

The operator runs ``salesbot users invite USER`` and hands the printed code to the person, who
sends ``/bind CODE`` from the chat account to bind. Codes expire, work once, and only their
SHA-256 is stored. Accounts listed in the org file (``telegram_id``, ``wecom_userid``) need none.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot import texts
from bot.messages import Reply
from bot.router import Router, Turn
from storage.db import session_scope
from storage.models import InviteCode, User
from storage.types import utcnow

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed on a phone
CODE_LENGTH = 8
ACCOUNT_COLUMNS = {"telegram": "telegram_id", "wecom": "wecom_userid"}


class UnknownUser(LookupError):
    pass


@dataclass(frozen=True)
class Invite:
    code: str
    user_id: str
    expires_at: datetime


def _hash(code: str) -> str:
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


def create_invite(engine: Engine, user_id: str, ttl: timedelta, now: datetime | None = None) -> Invite:
    """A fresh one-time code for ``user_id``, valid for ``ttl``."""
    now = now or utcnow()
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    with session_scope(engine) as session:
        if session.get(User, user_id) is None:
            raise UnknownUser(user_id)
        session.add(InviteCode(code_hash=_hash(code), user_id=user_id, expires_at=now + ttl, created_at=now))
    return Invite(f"{code[:4]}-{code[4:]}", user_id, now + ttl)


def redeem(engine: Engine, code: str, channel: str, account: str, now: datetime | None = None) -> User | None:
    """Bind ``channel:account`` to the code's user; None if the code is unknown, used or expired.

    The code is marked used with a conditional UPDATE, so two concurrent redemptions cannot both win.
    """
    column = ACCOUNT_COLUMNS.get(channel)
    if column is None or not code.strip():
        return None
    now = now or utcnow()
    key = _hash(code)
    with session_scope(engine) as session:
        invite = session.get(InviteCode, key)
        if invite is None or invite.used_at is not None or invite.expires_at <= now:
            return None
        taken = session.exec(select(User).where(getattr(User, column) == account)).first()
        if taken is not None:
            return None
        claimed = session.execute(
            update(InviteCode).where(InviteCode.code_hash == key, InviteCode.used_at.is_(None))  # type: ignore[union-attr]
            .values(used_at=now, used_by=f"{channel}:{account}")
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        user = session.get(User, invite.user_id)
        if user is None:
            return None
        setattr(user, column, account)
        session.add(user)
        session.flush()
        session.refresh(user)
        session.expunge(user)
        return user


def register_binding(router: Router, engine: Engine) -> None:
    """``/bind CODE`` for unknown accounts; for bound ones it says who they already are."""

    @router.unbound_command("bind")
    async def bind(turn: Turn) -> Reply:
        if not turn.args:
            return Reply(texts.BIND_USAGE)
        user = redeem(engine, turn.args, turn.msg.channel, turn.msg.account)
        if user is None:
            return Reply(texts.BIND_FAILED)
        return Reply(texts.BIND_OK.format(name=user.name, role=texts.ROLE_NAMES[user.role]))

    @router.command("bind", "绑定聊天账号", hidden=True)
    async def already(turn: Turn) -> Reply:
        return Reply(texts.BIND_ALREADY.format(name=turn.user.name))

