"""Storage behaves the same on SQLite and PostgreSQL: exact money, UTC times, append-only audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage.db import session_scope
from storage.models import ActionRequest, AppendOnlyError, AuditLog, Grant, Push
from storage.seed import seed_org
from tests.conftest import EXAMPLES


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed_org(engine, EXAMPLES / "org.yaml")
    return engine


def test_money_and_times_round_trip_exactly(seeded: Engine) -> None:
    at = datetime(2026, 12, 3, 23, 59, 59, tzinfo=timezone(timedelta(hours=8)))
    with session_scope(seeded) as s:
        s.add(Grant(rule_id="r", user_id="zhangsan", customer_id="bj-xiehe", capability="compensation",
                    limit=Decimal("499.99"), starts_at=at, ends_at=at + timedelta(hours=48), uses_left=3))
    with Session(seeded) as s:
        grant = s.exec(select(Grant)).one()
        assert grant.limit == Decimal("499.99") and isinstance(grant.limit, Decimal)
        assert grant.starts_at == at and grant.starts_at.tzinfo is not None
        assert grant.starts_at.astimezone(UTC).hour == 15


def test_idempotency_key_makes_a_second_request_impossible(seeded: Engine) -> None:
    with session_scope(seeded) as s:
        s.add(ActionRequest(idempotency_key="tg:1:42", requester_id="zhangsan", skill="compensation",
                            customer_id="bj-xiehe", amount=Decimal(300)))
    with pytest.raises(IntegrityError), session_scope(seeded) as s:
        s.add(ActionRequest(idempotency_key="tg:1:42", requester_id="zhangsan", skill="compensation",
                            customer_id="bj-xiehe", amount=Decimal(300)))
    with Session(seeded) as s:
        assert len(s.exec(select(ActionRequest)).all()) == 1


def test_one_push_per_dedupe_key(seeded: Engine) -> None:
    with session_scope(seeded) as s:
        s.add(Push(dedupe_key="doc:d1:v1:zhangsan", document_id="d1", document_version=1, user_id="zhangsan"))
    with pytest.raises(IntegrityError), session_scope(seeded) as s:
        s.add(Push(dedupe_key="doc:d1:v1:zhangsan", document_id="d1", document_version=1, user_id="zhangsan"))


def test_audit_log_is_append_only(seeded: Engine) -> None:
    with Session(seeded) as s:
        entry = s.exec(select(AuditLog).where(AuditLog.action == "seed")).one()
        entry.action = "tampered"
        with pytest.raises(AppendOnlyError):
            s.commit()
        s.rollback()
        with pytest.raises(AppendOnlyError):
            s.delete(s.get(AuditLog, entry.id))
            s.commit()
    with Session(seeded) as s:
        assert s.exec(select(AuditLog.action)).all() == ["seed"]
