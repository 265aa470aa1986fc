"""The durable push queue (table ``push``): talk tracks, digests and care packs waiting to be sent.

Lifecycle of a row: ``queued`` -> (claimed) ``sending`` -> ``sent`` -> ``acknowledged`` (the rep
pressed 有用/没用); a send that keeps failing goes back to ``queued`` with a growing
``next_attempt_at`` and ends ``failed`` after ``max_attempts`` (or at once when nobody can be
reached). ``dedupe_key`` is unique: one push per (document, version, recipient), whatever races.

Several workers may drain the same queue. A worker claims rows with one conditional ``UPDATE ...
WHERE status = 'queued'`` tagged with its own claim token, so a row goes to exactly one worker (on
PostgreSQL the candidate ``SELECT`` also takes ``FOR UPDATE SKIP LOCKED``, so workers do not even
wait on each other). Only the oldest unfinished push of each recipient is claimable: pushes to one
person go out in order, one at a time. A claim older than the lease (the worker died mid-send)
returns to ``queued``: at-least-once for that one message, never silently lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage.db import session_scope
from storage.models import Push
from storage.types import utcnow

UNFINISHED = ("queued", "sending")
FEEDBACK = {"up": "useful", "down": "useless"}


@dataclass
class PushItem:
    dedupe_key: str
    user_id: str
    kind: str
    body: dict[str, Any]
    document_id: str | None = None
    document_version: int = 0


def enqueue(engine: Engine, items: Sequence[PushItem], now: datetime | None = None) -> tuple[list[int], int]:
    """Insert the items whose key is new; returns (ids created, how many already existed)."""
    now = now or utcnow()
    created: list[int] = []
    existing = 0
    with session_scope(engine) as session:
        keys = [i.dedupe_key for i in items]
        known = set()
        for start in range(0, len(keys), 500):
            known |= set(
                session.exec(
                    select(Push.dedupe_key).where(col(Push.dedupe_key).in_(keys[start : start + 500]))
                )
            )
        new: list[PushItem] = []
        for item in items:
            if item.dedupe_key in known:
                existing += 1
                continue
            known.add(item.dedupe_key)
            new.append(item)
        try:  # all at once (one round trip per few hundred rows) ...
            with session.begin_nested():
                rows = [_row(item, now) for item in new]
                session.add_all(rows)
                session.flush()
            return [r.id for r in rows], existing  # type: ignore[misc]
        except IntegrityError:  # ... unless another process queued some of the same keys meanwhile
            pass
        for item in new:
            row = _row(item, now)
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:
                existing += 1
                continue
            created.append(row.id)  # type: ignore[arg-type]
    return created, existing


def _row(item: PushItem, now: datetime) -> Push:
    return Push(
        dedupe_key=item.dedupe_key,
        document_id=item.document_id,
        document_version=item.document_version,
        user_id=item.user_id,
        kind=item.kind,
        body=item.body,
        next_attempt_at=now,
        created_at=now,
    )


def claim(
    engine: Engine, worker: str, *, limit: int = 50, now: datetime | None = None, lease: float = 300.0
) -> list[Push]:
    """Claim up to ``limit`` due pushes, at most one per recipient (its oldest unfinished one)."""
    now = now or utcnow()
    token = f"{worker}:{uuid.uuid4().hex[:12]}"
    with session_scope(engine) as session:
        session.exec(
            update(Push)
            .where(
                col(Push.status) == "sending",  # type: ignore[call-overload]
                col(Push.claimed_at) < now - timedelta(seconds=lease),
            )
            .values(status="queued", claimed_by=None)
        )
        older = aliased(Push)
        first = (
            select(func.min(older.id))
            .where(older.user_id == Push.user_id, col(older.status).in_(UNFINISHED))
            .scalar_subquery()
        )
        query = (
            select(Push.id)
            .where(col(Push.status) == "queued", col(Push.next_attempt_at) <= now, Push.id == first)
            .order_by(col(Push.id))
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.exec(query))
        if not ids:
            return []
        session.exec(
            update(Push)
            .where(col(Push.id).in_(ids), col(Push.status) == "queued")  # type: ignore[call-overload]
            .values(status="sending", claimed_by=token, claimed_at=now, attempts=Push.attempts + 1)
        )
    with Session(engine) as session:
        return list(
            session.exec(
                select(Push)
                .where(col(Push.claimed_by) == token, col(Push.status) == "sending")
                .order_by(col(Push.id))
            )
        )


def _finish(engine: Engine, push: Push, **values: Any) -> bool:
    with session_scope(engine) as session:
        result = session.exec(
            update(Push)
            .where(
                col(Push.id) == push.id,  # type: ignore[call-overload]
                col(Push.claimed_by) == push.claimed_by,
                col(Push.status) == "sending",
            )
            .values(**values)
        )
        return bool(result.rowcount)


def release(engine: Engine, pushes: Sequence[Push]) -> None:
    """Give claims back (a worker stopping mid-send); rows already finished are left alone."""
    with session_scope(engine) as session:
        for push in pushes:
            session.exec(
                update(Push)
                .where(
                    col(Push.id) == push.id,
                    col(Push.claimed_by) == push.claimed_by,  # type: ignore[call-overload]
                    col(Push.status) == "sending",
                )
                .values(status="queued", claimed_by=None)
            )


def mark_progress(engine: Engine, push: Push, parts_sent: int) -> None:
    with session_scope(engine) as session:
        session.exec(update(Push).where(col(Push.id) == push.id).values(parts_sent=parts_sent))  # type: ignore[call-overload]


def mark_sent(engine: Engine, push: Push, now: datetime | None = None) -> bool:
    return _finish(engine, push, status="sent", sent_at=now or utcnow(), last_error="")


def mark_retry(
    engine: Engine,
    push: Push,
    error: str,
    *,
    max_attempts: int,
    base_backoff: float = 5.0,
    max_backoff: float = 3600.0,
    now: datetime | None = None,
    permanent: bool = False,
) -> str:
    """Back to the queue with a later ``next_attempt_at``, or ``failed`` when out of attempts."""
    now = now or utcnow()
    if permanent or push.attempts >= max_attempts:
        _finish(engine, push, status="failed", last_error=error[:200])
        return "failed"
    delay = min(max_backoff, base_backoff * 2 ** max(0, push.attempts - 1))
    _finish(
        engine,
        push,
        status="queued",
        claimed_by=None,
        last_error=error[:200],
        next_attempt_at=now + timedelta(seconds=delay),
    )
    return "queued"


def record_feedback(
    engine: Engine, push_id: int, user_id: str, value: str, now: datetime | None = None
) -> Push | None:
    """The recipient's 有用/没用; None when the push is not theirs. Pressing again changes the answer."""
    with session_scope(engine) as session:
        push = session.get(Push, push_id)
        if push is None or push.user_id != user_id:
            return None
        push.feedback = FEEDBACK.get(value, value)
        push.acknowledged_at = now or utcnow()
        if push.status == "sent":
            push.status = "acknowledged"
        session.add(push)
        return push


def pushes_for(engine: Engine, document_id: str) -> list[Push]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Push)
                .where(Push.document_id == document_id)
                .order_by(col(Push.document_version), col(Push.id))
            )
        )


def counts(engine: Engine, document_id: str | None = None) -> dict[str, int]:
    with Session(engine) as session:
        query = select(Push.status, func.count()).group_by(Push.status)
        if document_id is not None:
            query = query.where(Push.document_id == document_id)
        return {status: n for status, n in session.exec(query)}
