"""``salesbot bench permissions``: the engine against a plain-Python predicate for the same rules.

50 generated rules (45 permits, 5 denies; 1-3 clauses each over six typed tags) and 10,000 generated
customers, all in memory. Two figures, each for the CEL engine and for hand-written Python closures
built from the same clause list (no ``eval`` anywhere):

- decisions/s: a request decision as the engine makes it: the customer's tags typed once, every deny
  rule evaluated, the live re-check of ``when_false`` grants, then ``decide()`` over the baseline and
  the grants in force;
- bulk re-evaluation: every rule for every customer (500,000 condition evaluations), as after a bulk
  tag update.
"""

from __future__ import annotations

import operator
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from skills.conditions import Condition, EvalContext
from skills.engine import Source, decide

TAGS = {
    "nps": "int",
    "competitor_views": "int",
    "bad_review": "bool",
    "review_match": "double",
    "last_order_amount": "double",
    "tier": "string",
}
TAG_TYPES = {f"customer.{k}": v for k, v in TAGS.items()}
OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "==": operator.eq}


@dataclass(frozen=True)
class Clause:
    tag: str
    op: str
    value: Any

    def cel(self) -> str:
        if TAGS[self.tag] == "bool":
            return f"customer.{self.tag}" if self.value else f"!customer.{self.tag}"
        if TAGS[self.tag] == "string":
            return f'customer.{self.tag} == "{self.value}"'
        literal = f"{float(self.value)!r}" if TAGS[self.tag] == "double" else str(self.value)
        return f"customer.{self.tag} {self.op} {literal}"

    def python(self) -> Callable[[dict[str, Any]], bool]:
        tag, value = self.tag, self.value
        if TAGS[tag] == "bool":
            return (lambda c: c[tag] is True) if value else (lambda c: c[tag] is False)
        if TAGS[tag] == "string":
            return lambda c: c[tag] == value
        fn = OPS[self.op]
        return lambda c: fn(c[tag], value)


def random_clause(rng: random.Random) -> Clause:
    tag = rng.choice(list(TAGS))
    kind = TAGS[tag]
    if kind == "bool":
        return Clause(tag, "==", rng.random() < 0.5)
    if kind == "string":
        return Clause(tag, "==", rng.choice(["A", "B", "C"]))
    op = rng.choice([">", "<", ">=", "<="])
    value = {
        "nps": rng.randint(-50, 50),
        "competitor_views": rng.randint(0, 8),
        "review_match": round(rng.random(), 2),
        "last_order_amount": float(rng.randint(0, 10000)),
    }[tag]
    return Clause(tag, op, value)


def random_customer(rng: random.Random) -> dict[str, Any]:
    return {
        "nps": rng.randint(-60, 60),
        "competitor_views": rng.randint(0, 10),
        "bad_review": rng.random() < 0.3,
        "review_match": rng.random(),
        "last_order_amount": float(rng.randint(0, 12000)),
        "tier": rng.choice(["A", "B", "C"]),
    }


@dataclass
class BenchRule:
    id: str
    clauses: list[Clause]
    deny: bool
    limit: Decimal
    condition: Condition
    predicate: Callable[[dict[str, Any]], bool]


def make_rules(n: int, rng: random.Random) -> list[BenchRule]:
    out = []
    for i in range(n):
        clauses = [random_clause(rng) for _ in range(rng.randint(1, 3))]
        preds = [c.python() for c in clauses]
        out.append(
            BenchRule(
                f"r{i}",
                clauses,
                deny=i % 10 == 9,
                limit=Decimal(rng.choice([100, 300, 500, 1000])),
                condition=Condition.compile(" && ".join(c.cel() for c in clauses)),
                predicate=lambda c, ps=preds: all(p(c) for p in ps),
            )
        )
    return out


def _py_ok(rule: BenchRule, c: dict[str, Any]) -> bool | None:
    try:
        return rule.predicate(c)
    except (KeyError, TypeError):
        return None


def run(n_rules: int = 50, n_customers: int = 10_000, repeats: int = 3, seed: int = 5) -> dict[str, Any]:
    rng = random.Random(seed)
    rules = make_rules(n_rules, rng)
    customers = [random_customer(rng) for _ in range(n_customers)]
    denies = [r for r in rules if r.deny]
    permits = [r for r in rules if not r.deny]
    base = [Source("role", "role:rep", Decimal(0), False)]
    # grants in force per customer, as the engine keeps them after tag changes (computed once, untimed)
    grants = [
        [
            Source("grant", r.id, r.limit, True, grant_id=j)
            for j, r in enumerate(permits)
            if r.condition.evaluate(EvalContext(TAG_TYPES, customer=c)).permits
        ]
        for c in customers
    ]
    amount = Decimal(250)

    def decisions_engine() -> int:
        for c, g in zip(customers, grants, strict=True):
            ctx = EvalContext(TAG_TYPES, customer=c)
            hits = [(r.id, o.error) for r in denies if (o := r.condition.evaluate(ctx)).denies]
            live = [s for s, r in ((s, permits[s.grant_id]) for s in g) if r.condition.evaluate(ctx).permits]
            decide(
                "compensation",
                amount,
                cap=Decimal(5000),
                amount_capability=True,
                denied_by=hits,
                sources=[*base, *live],
            )
        return len(customers)

    def decisions_python() -> int:
        for c, g in zip(customers, grants, strict=True):
            hits = [(r.id, None) for r in denies if _py_ok(r, c) is not False]
            live = [s for s in g if _py_ok(permits[s.grant_id], c)]
            decide(
                "compensation",
                amount,
                cap=Decimal(5000),
                amount_capability=True,
                denied_by=hits,
                sources=[*base, *live],
            )
        return len(customers)

    def bulk_engine() -> int:
        n = 0
        for c in customers:
            ctx = EvalContext(TAG_TYPES, customer=c)
            for r in rules:
                r.condition.evaluate(ctx)
                n += 1
        return n

    def bulk_python() -> int:
        n = 0
        for c in customers:
            for r in rules:
                _py_ok(r, c)
                n += 1
        return n

    def timed(fn: Callable[[], int]) -> dict[str, Any]:
        rates, secs = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            count = fn()
            dt = time.perf_counter() - t0
            rates.append(count / dt)
            secs.append(dt)
        return {
            "count": count,
            "median_s": statistics.median(secs),
            "min_s": min(secs),
            "max_s": max(secs),
            "median_rate": statistics.median(rates),
            "min_rate": min(rates),
            "max_rate": max(rates),
        }

    # agreement check (both implementations must decide identically before timing means anything)
    mismatches = sum(
        1
        for c in customers[:2000]
        for r in rules
        if (r.condition.evaluate(EvalContext(TAG_TYPES, customer=c)).value) != _py_ok(r, c)
    )
    return {
        "rules": n_rules,
        "customers": n_customers,
        "repeats": repeats,
        "mismatches": mismatches,
        "decisions": {"engine": timed(decisions_engine), "python": timed(decisions_python)},
        "bulk": {"engine": timed(bulk_engine), "python": timed(bulk_python)},
    }


def rules_yaml(rules: list[BenchRule]) -> str:
    """The generated rules as a rules file (for the database-backed figure)."""
    lines = ["tags:"] + [f"  {k}: {v}" for k, v in TAG_TYPES.items()]
    lines += [
        "caps: {compensation: 5000, price_adjust: 20, extended_warranty: 36}",
        "roles:",
        "  rep: {compensation: {limit: 0}}",
        "rules:",
    ]
    for r in rules:
        cond = r.condition.source.replace("'", "''")
        lines.append(f"  - id: {r.id}")
        lines.append(f"    when: '{cond}'")
        if r.deny:
            lines.append("    deny: [compensation]")
        else:
            lines.append(f"    grant: {{compensation: {{limit: {r.limit}}}}}")
            lines.append("    approval_free: true")
            lines.append("    exit: {when_false: true}")
    return "\n".join(lines) + "\n"


def run_db(n_rules: int = 50, n_customers: int = 1000, seed: int = 5) -> dict[str, Any]:
    """Decisions through ``PermissionEngine.decide`` against a SQLite file (grants opened first)."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from sqlmodel import Session

    from skills.engine import PermissionEngine
    from skills.rules import load_rules
    from storage.db import create_schema, make_engine, session_scope
    from storage.models import Customer, User

    rng = random.Random(seed)
    rules = make_rules(n_rules, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(rules_yaml(rules), encoding="utf-8")
        perms = PermissionEngine(load_rules(path))
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        create_schema(engine)
        now = datetime.now(UTC)
        with session_scope(engine) as s:
            for r in range(50):  # 50 reps sharing the customers, as in a real region
                s.add(User(id=f"rep{r}", name=f"rep{r}", role="rep", region="R"))
            s.flush()
            for i in range(n_customers):
                s.add(
                    Customer(
                        id=f"c{i}",
                        name=f"c{i}",
                        region="R",
                        owner_id=f"rep{i % 50}",
                        tags=random_customer(rng),
                    )
                )
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            for c in s.exec(__import__("sqlmodel").select(Customer)):
                perms.sync_customer(s, c, now)
        sync_s = time.perf_counter() - t0
        with Session(engine) as s:
            customers = [s.get(Customer, f"c{i}") for i in range(n_customers)]
            users = {u.id: u for u in s.exec(__import__("sqlmodel").select(User))}
            t0 = time.perf_counter()
            for c in customers:
                perms.decide(s, users[c.owner_id], c, "compensation", Decimal(250), now)
            dt = time.perf_counter() - t0
        engine.dispose()
    return {
        "customers": n_customers,
        "decisions_per_s": n_customers / dt,
        "seconds": dt,
        "sync_seconds": sync_s,
    }
