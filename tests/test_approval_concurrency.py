"""At most one execution per approval under repeated and concurrent presses: threads and processes
against the same database (a SQLite file and PostgreSQL); duplicate requests and the last grant use."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.db import create_schema, make_engine
from storage.models import ActionLedger, ActionRequest, Approval, AuditLog, Grant
from tests.conftest import EXAMPLES
from tests.perm_helpers import seeded, service

PRESSERS = ["wangjing", "zhoujh"] * 4


def _pending(engine: Engine) -> int:
    svc = service(engine)
    result = svc.request("zhangsan", "compensation", "北医三院", {"amount": "900", "reason": "并发"})
    assert result.status == "pending", result.text
    with Session(engine) as s:
        return s.exec(select(Approval.id)).one()


def _assert_once(engine: Engine, statuses: list[str]) -> None:
    assert statuses.count("executed") == 1, statuses
    assert set(statuses) <= {"executed", "duplicate"}
    with Session(engine) as s:
        assert len(list(s.exec(select(ActionLedger)))) == 1
        assert len([a for a in s.exec(select(AuditLog)) if a.action == "execute"]) == 1
        assert s.exec(select(ActionRequest)).one().status == "executed"


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_presses_from_threads_execute_once(engine: Engine, round_: int) -> None:
    seeded(engine)
    approval_id = _pending(engine)
    svc = service(engine)
    barrier = threading.Barrier(len(PRESSERS))

    def press(user: str) -> str:
        barrier.wait()
        return svc.decide_approval(user, approval_id, True).status

    with ThreadPoolExecutor(len(PRESSERS)) as pool:
        statuses = list(pool.map(press, PRESSERS))
    _assert_once(engine, statuses)


def press_in_process(url: str, approval_id: int, user: str, start_at: float, approve: bool) -> str:
    engine = make_engine(url)
    svc = service(engine)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        return svc.decide_approval(user, approval_id, approve).status
    finally:
        engine.dispose()


def test_concurrent_presses_from_processes_execute_once(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    seeded(engine)
    approval_id = _pending(engine)
    ctx = mp.get_context("spawn")
    start_at = time.time() + 4.0  # every process is up and waiting before the first press
    with ctx.Pool(6) as pool:
        args = [(db_url, approval_id, user, start_at, i % 3 != 2) for i, user in enumerate(PRESSERS[:6])]
        statuses = pool.starmap(press_in_process, args)
    # one winner: approve (executed) or reject (rejected); everyone else sees it already decided
    winners = [s for s in statuses if s in ("executed", "rejected")]
    assert len(winners) == 1 and statuses.count("duplicate") == len(statuses) - 1, statuses
    with Session(engine) as s:
        ledger = list(s.exec(select(ActionLedger)))
        assert len(ledger) == (1 if winners == ["executed"] else 0)
    engine.dispose()


def test_repeated_presses_and_retried_callbacks(engine: Engine) -> None:
    seeded(engine)
    approval_id = _pending(engine)
    svc = service(engine)
    statuses = [svc.decide_approval("wangjing", approval_id, True).status for _ in range(5)]
    statuses += [svc.decide_approval("wangjing", approval_id, False).status]
    _assert_once(engine, statuses)


def test_duplicate_requests_racing_make_one_request(engine: Engine) -> None:
    seeded(engine)
    svc = service(engine)
    barrier = threading.Barrier(6)

    def ask(_: int) -> str:
        barrier.wait()
        return svc.request(
            "zhangsan", "compensation", "北医三院", {"amount": "900"}, key="wecom:ZhangSan:msg-77"
        ).status

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(ask, range(6)))
    assert statuses.count("pending") == 1 and statuses.count("duplicate") == 5, statuses
    with Session(engine) as s:
        assert len(list(s.exec(select(Approval)))) == 1


def test_the_last_use_of_a_grant_is_consumed_once(engine: Engine) -> None:
    """review-match-500 has one use: racing requests for 400 each get one allow from it, never two."""
    seeded(engine)
    svc = service(engine)
    barrier = threading.Barrier(4)

    def ask(i: int) -> str:
        barrier.wait()
        return svc.request("zhangsan", "compensation", "bj-pku3", {"amount": "400", "reason": f"r{i}"}).status

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(ask, range(4)))
    assert statuses.count("executed") == 1 and statuses.count("pending") == 3, statuses
    with Session(engine) as s:
        grant = s.exec(select(Grant).where(Grant.rule_id == "review-match-500")).one()
        assert grant.uses_left == 0
        assert [x.amount for x in s.exec(select(ActionLedger))] == [Decimal("400")]


def test_no_execution_above_the_cap_even_when_the_cap_drops_while_waiting(engine: Engine, tmp_path) -> None:
    seeded(engine)
    rules = tmp_path / "rules.yaml"
    text = (EXAMPLES / "rules.yaml").read_text(encoding="utf-8")
    rules.write_text(text, encoding="utf-8")
    svc = service(engine, rules)
    assert svc.request("zhangsan", "compensation", "北医三院", {"amount": "1800"}).status == "pending"
    rules.write_text(text.replace("compensation: 5000", "compensation: 1000"), encoding="utf-8")
    import os

    os.utime(rules, ns=(10**18, 10**18))
    with Session(engine) as s:
        approval_id = s.exec(select(Approval.id)).one()
    result = svc.decide_approval("wangjing", approval_id, True)
    assert result.status == "blocked" and "硬上限 1000 元" in result.text
    with Session(engine) as s:
        assert list(s.exec(select(ActionLedger))) == []
