"""Property tests of PERMISSIONS.md's invariants, and the engine against a small reference model.

Times are drawn around the boundaries (expiry - 1 s, exactly, + 1 s): uniformly drawn times miss
off-by-one errors.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session

from skills.engine import ALLOW, APPROVAL, DENY, PermissionEngine, Source, decide, grant_active
from skills.rules import load_rules
from storage.db import session_scope
from storage.models import Customer, Grant, User
from tests.perm_helpers import T0

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000"), places=2)
limits = st.one_of(st.none(), st.decimals(min_value=Decimal(0), max_value=Decimal("8000"), places=0))
offsets = st.sampled_from([-86400, -3600, -2, -1, 0, 1, 2, 3600, 86400])


@st.composite
def sources(draw: st.DrawFn, n: int = 6) -> list[Source]:
    out = []
    for i in range(draw(st.integers(0, n))):
        kind = draw(st.sampled_from(["role", "grant", "grant"]))
        ends = None if draw(st.booleans()) else T0 + timedelta(seconds=draw(offsets))
        out.append(
            Source(
                kind,
                f"s{i}",
                draw(limits),
                draw(st.booleans()),
                ends_at=ends,
                grant_id=i if kind == "grant" else None,
            )
        )
    return out


caps = st.decimals(min_value=Decimal(1), max_value=Decimal("6000"), places=0)


def run(amount: Decimal, cap: Decimal, denied: bool, srcs: list[Source]):  # type: ignore[no-untyped-def]
    return decide(
        "compensation",
        amount,
        cap=cap,
        amount_capability=True,
        denied_by=[("d", None)] if denied else [],
        sources=srcs,
    )


@given(amounts, caps, st.booleans(), sources())
def test_no_allow_above_the_hard_cap_or_past_a_deny(amount, cap, denied, srcs) -> None:
    d = run(amount, cap, denied, srcs)
    if d.outcome == ALLOW:
        assert amount <= cap and not denied
        assert any(s.approval_free and s.covers(amount) for s in srcs)
    if denied or amount > cap:
        assert d.outcome == DENY


@given(amounts, caps, sources(), st.randoms())
def test_order_and_duplicates_do_not_change_the_decision(amount, cap, srcs, rnd) -> None:
    d1 = run(amount, cap, False, srcs)
    shuffled = srcs + srcs[: len(srcs) // 2]
    rnd.shuffle(shuffled)
    d2 = run(amount, cap, False, shuffled)
    assert (d1.outcome, d1.reason, d1.authority) == (d2.outcome, d2.reason, d2.authority)
    assert (d1.consume.grant_id if d1.consume else None) == (d2.consume.grant_id if d2.consume else None)


@given(amounts, caps, sources(), sources(n=2))
def test_adding_a_permit_never_removes_an_allow_and_adding_a_deny_never_adds_one(
    amount, cap, srcs, more
) -> None:
    base = run(amount, cap, False, srcs)
    extra = [
        Source(
            s.kind,
            "x" + s.name,
            s.limit,
            s.approval_free,
            s.ends_at,
            None if s.grant_id is None else 100 + s.grant_id,
        )
        for s in more
    ]
    widened = run(amount, cap, False, srcs + extra)
    if base.outcome == ALLOW:
        assert widened.outcome == ALLOW
    assert run(amount, cap, True, srcs + extra).outcome == DENY


@given(amounts, caps, sources())
def test_limits_are_maxed_never_summed_and_the_tightest_sufficient_grant_is_used(amount, cap, srcs) -> None:
    d = run(amount, cap, False, srcs)
    numeric = [s.limit for s in srcs if s.limit is not None]
    if srcs and len(numeric) == len(srcs):
        assert d.authority == max(numeric)
    free = [s for s in srcs if s.approval_free and s.covers(amount)]
    if d.outcome == ALLOW and d.consume is not None:
        lim = [s.limit if s.limit is not None else Decimal("Infinity") for s in free]
        assert (d.consume.limit if d.consume.limit is not None else Decimal("Infinity")) == min(lim)
    if d.outcome == APPROVAL:
        assert not free


@given(st.sampled_from([-1, 0, 1]), st.sampled_from([None, 0, 1]), st.sampled_from([None, -1, 0, 1]))
def test_grant_activity_at_the_boundaries(delta: int, uses: int | None, closed: int | None) -> None:
    now = T0
    ends = now + timedelta(seconds=delta)  # expires 1 s ago / exactly now / in 1 s
    g = Grant(
        rule_id="r",
        user_id="u",
        capability="compensation",
        starts_at=now - timedelta(hours=1),
        ends_at=ends,
        uses_left=uses,
        closed_at=None if closed is None else now + timedelta(seconds=closed),
    )
    expected = delta > 0 and uses != 0 and (closed is None or closed > 0)
    assert grant_active(g, now) is expected
    g2 = Grant(rule_id="r", user_id="u", capability="compensation", starts_at=now + timedelta(seconds=1))
    assert not grant_active(g2, now)  # not started yet
    assert grant_active(g2, now + timedelta(seconds=1))


# ---- the engine (with its database queries) against a reference model -------------------------

RULES = """
tags: {customer.flag: bool, customer.blocked: bool}
caps: {compensation: 1000, price_adjust: 20, extended_warranty: 36}
roles:
  rep: {compensation: {limit: 100, approval_free: true}}
rules:
  - {id: r-ttl, when: "customer.flag", grant: {compensation: {limit: 500}}, approval_free: true,
     exit: {ttl: 1h}}
  - {id: r-wf, when: "customer.flag", grant: {compensation: {limit: 300}}, approval_free: true,
     exit: {when_false: true}}
  - {id: d, when: "has(customer.blocked) && customer.blocked", deny: [compensation]}
"""


def reference(amount: Decimal, flag: bool, blocked: bool, grants: list[dict]) -> tuple[str, int | None]:
    """PERMISSIONS.md read literally, written independently of skills.engine."""
    if blocked:
        return ("deny", None)
    if amount > 1000:
        return ("deny", None)
    usable = []
    for g in grants:
        if g["rule"] == "gone" or (g["rule"] == "r-wf" and not flag):
            continue
        if not (g["start"] <= 0 and (g["end"] is None or g["end"] > 0)):
            continue
        if g["closed"] is not None and g["closed"] <= 0:
            continue
        if g["uses"] == 0:
            continue
        usable.append(g)
    candidates = [(Decimal(100), 10**9, -1)] if amount <= 100 else []
    candidates += [
        (g["limit"], g["end"] if g["end"] is not None else 10**9, g["id"])
        for g in usable
        if g["free"] and amount <= g["limit"]
    ]
    if not candidates:
        return ("approval", None)
    best = min(candidates)
    return ("allow", None if best[2] == -1 else best[2])


grant_rows = st.lists(
    st.fixed_dictionaries(
        {
            "rule": st.sampled_from(["r-ttl", "r-wf", "gone"]),
            "limit": st.decimals(min_value=Decimal(0), max_value=Decimal(1500), places=0),
            "free": st.booleans(),
            "start": st.sampled_from([-3600, -1, 0, 1]),
            "end": st.one_of(st.none(), offsets),
            "closed": st.one_of(st.none(), st.sampled_from([-1, 0, 1])),
            "uses": st.sampled_from([None, 0, 1, 2]),
        }
    ),
    max_size=5,
)


@pytest.fixture
def ref_db(sqlite_engine: Engine, tmp_path: Path) -> tuple[Engine, PermissionEngine]:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    with session_scope(sqlite_engine) as s:
        s.add(User(id="u", name="U", role="rep", region="R"))
        s.flush()
        s.add(Customer(id="c", name="C", region="R", owner_id="u", tags={}))
    return sqlite_engine, PermissionEngine(load_rules(path))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1200), places=0),
    flag=st.booleans(),
    blocked=st.booleans(),
    grants=grant_rows,
)
def test_engine_agrees_with_the_reference_model(ref_db, amount, flag, blocked, grants) -> None:
    engine, perms = ref_db
    now = T0
    with session_scope(engine) as s:
        s.execute(delete(Grant))
        customer = s.get(Customer, "c")
        customer.tags = {"flag": flag, "blocked": blocked}
        s.add(customer)
        for g in grants:
            row = Grant(
                rule_id=g["rule"],
                user_id="u",
                customer_id="c",
                capability="compensation",
                limit=g["limit"],
                approval_free=g["free"],
                starts_at=now + timedelta(seconds=g["start"]),
                ends_at=None if g["end"] is None else now + timedelta(seconds=g["end"]),
                closed_at=None if g["closed"] is None else now + timedelta(seconds=g["closed"]),
                uses_left=g["uses"],
                subject="customer:c",
                armed=False,
            )
            s.add(row)
            s.flush()
            g["id"] = row.id
    with Session(engine) as s:
        d = perms.decide(s, s.get(User, "u"), s.get(Customer, "c"), "compensation", amount, now)
    expected = reference(amount, flag, blocked, grants)
    assert (d.outcome, d.consume.grant_id if d.consume else None) == expected


# ---- whole flow: whatever is requested and approved, nothing above the cap is ever executed ----------

cap_amounts = st.one_of(
    st.sampled_from(["4999.99", "5000", "5000.01", "300", "300.01", "500", "2000.01"]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9000"), places=2).map(str),
)


@pytest.fixture
def flow_db(sqlite_engine: Engine) -> Engine:
    from tests.perm_helpers import seeded

    return seeded(sqlite_engine)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    requests=st.lists(
        st.tuples(st.sampled_from(["zhangsan", "chenchen"]), cap_amounts), min_size=1, max_size=4
    ),
    approver=st.sampled_from(["wangjing", "lihua", "zhoujh"]),
)
def test_no_executed_action_ever_exceeds_the_cap(flow_db: Engine, requests, approver) -> None:
    from sqlmodel import select

    from storage.models import ActionLedger, Approval
    from tests.perm_helpers import service

    svc = service(flow_db)
    customer = {"zhangsan": "bj-pku3", "chenchen": "js-gulou"}
    for user, amount in requests:
        svc.request(
            user,
            "compensation",
            customer[user],
            {"amount": amount},
            key=f"k{svc!r}{user}{amount}{id(requests)}",
        )
    with Session(flow_db) as s:
        pending = [a.id for a in s.exec(select(Approval).where(Approval.status == "pending"))]
    for approval_id in pending:
        for who in (approver, "zhoujh"):
            svc.decide_approval(who, approval_id, True)
    with Session(flow_db) as s:
        assert all(row.amount <= Decimal(5000) for row in s.exec(select(ActionLedger)))
