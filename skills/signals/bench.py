"""Benchmarks for ``salesbot bench journey``: journey ingestion with 20 breakpoint rules, and health
recomputation for 10,000 opportunities, each beside a named baseline.

- journey: the same events and rules with the conditions as plain Python functions instead of
  CEL (baseline "python-predicates"): what the expression language costs on top of storage.
- health: loading the same rows and writing a constant score (baseline "io-floor"): what the
  scoring costs on top of the reads and writes it cannot avoid.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from skills.signals.events import ingest_journey_events
from skills.signals.health import HealthConfig, recompute_health
from skills.signals.journey import JourneyFileIn, JourneyRules, RuleIn, compile_rules, evaluate_due
from storage.db import create_schema, make_engine, session_scope
from storage.models import Customer, Opportunity, OpportunityHealth, Signal, TagChange, User

START = datetime(2026, 11, 1, tzinfo=UTC)
PAGE_TYPES = ["params", "product", "price_compare", "quote", "competitor_compare", "case", "news", "store"]


def bench_rules() -> list[RuleIn]:
    """20 rules: the six of examples/journey.yaml in spirit, plus variants over other pages."""
    rules = [
        RuleIn(
            id="params-no-appointment",
            name="参数后未预约",
            events=["page_view"],
            when='event.page_type == "params"',
            unless='other.kind == "appointment"',
            within="24h",
        ),
        RuleIn(
            id="price-compare-stuck",
            name="比价页停留",
            events=["page_view"],
            when='event.page_type == "price_compare"',
            unless='(other.kind == "page_view" && other.page != event.page) || other.kind == "appointment"',
            within="8m",
        ),
        RuleIn(
            id="dwell-no-interaction",
            name="停留无交互",
            events=["dwell"],
            when="event.dwell_seconds > 120.0 && event.interactions == 0",
        ),
        RuleIn(
            id="quote-viewed-no-contact",
            name="报价后未联系",
            events=["page_view"],
            when='event.page_type == "quote"',
            unless='other.kind == "appointment" || (other.kind == "interaction" && '
            'other.data.action == "contact")',
            within="48h",
        ),
        RuleIn(
            id="demo-form-abandoned",
            name="演示表单放弃",
            events=["interaction"],
            when='event.data.action == "demo_form_start"',
            unless='other.kind == "interaction" && other.data.action == "demo_form_submit"',
            within="30m",
        ),
        RuleIn(
            id="competitor-page-hot",
            name="竞品对比",
            events=["page_view"],
            when='event.page_type == "competitor_compare" && customer.tags.competitor_views >= 3',
        ),
    ]
    for i, page in enumerate(["case", "news", "store", "product", "params", "quote", "price_compare"]):
        rules.append(
            RuleIn(
                id=f"long-dwell-{i}",
                name=f"长停留 {page}",
                events=["dwell"],
                when=f'event.page_type == "{page}" && event.dwell_seconds > {60 + 30 * i}.0',
            )
        )
    for i, page in enumerate(["case", "news", "store", "product", "competitor_compare", "params", "quote"]):
        rules.append(
            RuleIn(
                id=f"view-no-next-{i}",
                name=f"浏览后无后续 {page}",
                events=["page_view"],
                when=f'event.page_type == "{page}" && event.hour >= {i}',
                unless='other.kind == "page_view" || other.kind == "appointment"',
                within="2h",
            )
        )
    return rules


def python_rules(rules: list[RuleIn]) -> JourneyRules:
    """The same 20 rules as Python predicates over dicts (the baseline)."""
    compiled = compile_rules(JourneyFileIn(rules=rules))
    preds: dict[str, tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], bool] | None]] = {
        "params-no-appointment": (
            lambda c: c["event"]["page_type"] == "params",
            lambda c: c["other"]["kind"] == "appointment",
        ),
        "price-compare-stuck": (
            lambda c: c["event"]["page_type"] == "price_compare",
            lambda c: (
                (c["other"]["kind"] == "page_view" and c["other"]["page"] != c["event"]["page"])
                or c["other"]["kind"] == "appointment"
            ),
        ),
        "dwell-no-interaction": (
            lambda c: c["event"]["dwell_seconds"] > 120 and c["event"]["interactions"] == 0,
            None,
        ),
        "quote-viewed-no-contact": (
            lambda c: c["event"]["page_type"] == "quote",
            lambda c: (
                c["other"]["kind"] == "appointment"
                or (c["other"]["kind"] == "interaction" and c["other"]["data"]["action"] == "contact")
            ),
        ),
        "demo-form-abandoned": (
            lambda c: c["event"]["data"]["action"] == "demo_form_start",
            lambda c: (
                c["other"]["kind"] == "interaction" and c["other"]["data"]["action"] == "demo_form_submit"
            ),
        ),
        "competitor-page-hot": (
            lambda c: (
                c["event"]["page_type"] == "competitor_compare"
                and c["customer"]["tags"]["competitor_views"] >= 3
            ),
            None,
        ),
    }
    for i, page in enumerate(["case", "news", "store", "product", "params", "quote", "price_compare"]):
        preds[f"long-dwell-{i}"] = (
            lambda c, p=page, t=60 + 30 * i: c["event"]["page_type"] == p and c["event"]["dwell_seconds"] > t,
            None,
        )
    for i, page in enumerate(["case", "news", "store", "product", "competitor_compare", "params", "quote"]):
        preds[f"view-no-next-{i}"] = (
            lambda c, p=page, h=i: c["event"]["page_type"] == p and c["event"]["hour"] >= h,
            lambda c: c["other"]["kind"] in ("page_view", "appointment"),
        )

    class Pred:
        def __init__(self, fn: Callable[[dict[str, Any]], bool]):
            self.fn = fn

        def execute(self, ctx: dict[str, Any]) -> bool:
            return self.fn(ctx)

    out = []
    for r in compiled.rules:  # the same rules, field sets and windows; only the conditions differ
        when, unless = preds[r.id]
        out.append(replace(r, when=Pred(when), unless=Pred(unless) if unless else None))
    class DictContext(dict[str, Any]):
        def add_variable(self, name: str, value: Any) -> None:
            self[name] = value

    return JourneyRules(out, context=DictContext)


def synthetic_events(n: int, customers: list[str], seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    t = {c: START + timedelta(minutes=rng.randint(0, 60 * 24 * 5)) for c in customers}
    for i in range(n):
        who = rng.choice(customers)
        t[who] += timedelta(seconds=rng.randint(20, 4000))
        kind = rng.choices(["page_view", "dwell", "interaction", "appointment"], [55, 25, 17, 3])[0]
        e: dict[str, Any] = {
            "event_id": f"b{i}",
            "kind": kind,
            "at": t[who].isoformat(),
            "page_type": rng.choice(PAGE_TYPES),
        }
        e["page"] = f"/{e['page_type']}/{rng.randint(1, 5)}"
        if who.startswith("v"):
            e["visitor"], e["region"] = who, rng.choice(["北京", "江苏"])
        else:
            e["customer"] = who
        if kind == "dwell":
            e["dwell_seconds"] = rng.randint(5, 400)
            e["interactions"] = rng.choice([0, 0, 1, 3])
        if kind == "interaction":
            e["data"] = {"action": rng.choice(["demo_form_start", "demo_form_submit", "contact", "click"])}
        out.append(e)
    rng.shuffle(out)  # arrival order is not event order
    return out


def _seed(
    engine: Engine, customers: int, opportunities: int = 0, rng: random.Random | None = None
) -> list[str]:
    rng = rng or random.Random(3)
    with session_scope(engine) as s:
        s.add(User(id="mgr", name="经理", role="manager", region="北京"))
        s.flush()
        for i in range(20):
            s.add(User(id=f"rep{i}", name=f"代表{i}", role="rep", region="北京", manager_id="mgr"))
        s.flush()
        ids = []
        for i in range(customers):
            cid = f"c{i:05d}"
            ids.append(cid)
            s.add(
                Customer(
                    id=cid,
                    name=f"医院{i}",
                    region=["北京", "江苏", "上海"][i % 3],
                    owner_id=f"rep{i % 20}",
                    tags={"nps": rng.randint(-30, 60), "competitor_views": rng.randint(0, 6)},
                )
            )
        s.flush()
        stages = ["需求确认", "方案评估", "招标准备", "商务谈判"]
        for i in range(opportunities):
            since = START - timedelta(days=rng.randint(0, 90))
            s.add(
                Opportunity(
                    id=f"o{i:06d}",
                    customer_id=ids[i % len(ids)],
                    products=["P"],
                    stage=rng.choice(stages),
                    amount=Decimal(rng.randint(1, 500) * 10000),
                    stage_since=since,
                    last_activity=since + timedelta(days=rng.randint(0, 60)),
                )
            )
    return ids


@dataclass
class Measure:
    name: str
    unit: str
    runs: list[float]
    baseline_name: str
    baseline_runs: list[float]
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_runs)

    def line(self) -> str:
        lo, hi = min(self.runs), max(self.runs)
        blo, bhi = min(self.baseline_runs), max(self.baseline_runs)
        return (
            f"{self.name}: median {self.median:,.2f} {self.unit} "
            f"(range {lo:,.2f}–{hi:,.2f}, {len(self.runs)} runs); "
            f"baseline {self.baseline_name}: {self.baseline_median:,.2f} {self.unit} "
            f"(range {blo:,.2f}–{bhi:,.2f}); ratio {self.median / self.baseline_median:.2f}. {self.note}"
        )


def journey_run(events: int, rules: JourneyRules, workdir: Path, batch: int = 500) -> tuple[float, int]:
    """Events per second through ingest (batches of ``batch``) plus the final evaluate_due."""
    engine = make_engine(f"sqlite:///{workdir / 'journey.db'}")
    create_schema(engine)
    ids = _seed(engine, 300)
    stream = synthetic_events(events, ids + [f"v{i}" for i in range(100)])
    began = time.perf_counter()
    for i in range(0, len(stream), batch):
        ingest_journey_events(engine, stream[i : i + batch], source="bench", rules=rules, now=START)
    outcome = evaluate_due(engine, rules, START + timedelta(days=60))
    elapsed = time.perf_counter() - began
    with session_scope(engine) as s:
        from sqlalchemy import func

        from storage.models import Breakpoint

        found = s.exec(select(func.count()).select_from(Breakpoint)).one()
    engine.dispose()
    del outcome
    return events / elapsed, int(found)


def bench_journey(events: int = 20000, repeat: int = 3) -> Measure:
    spec = bench_rules()
    runs, base, counts = [], [], set()
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            rate, found = journey_run(events, compile_rules(JourneyFileIn(rules=spec)), Path(d))
            runs.append(rate)
            counts.add(found)
        with tempfile.TemporaryDirectory() as d:
            rate, found = journey_run(events, python_rules(spec), Path(d))
            base.append(rate)
            counts.add(found)
    same = "same breakpoints in both" if len(counts) == 1 else f"breakpoint counts differ: {sorted(counts)}"
    return Measure(
        f"journey ingest, {len(spec)} rules, {events} events in batches of 500, SQLite",
        "events/s",
        runs,
        "python-predicates",
        base,
        f"{counts.pop()} breakpoints; {same}.",
    )


def _health_db(workdir: Path, opportunities: int) -> Engine:
    engine = make_engine(f"sqlite:///{workdir / 'health.db'}")
    create_schema(engine)
    rng = random.Random(5)
    ids = _seed(engine, max(1, opportunities // 10), opportunities, rng)
    with session_scope(engine) as s:
        for _ in range(opportunities // 5):
            cid = rng.choice(ids)
            s.add(
                Signal(
                    customer_id=cid,
                    rep_id=f"rep{int(cid[1:]) % 20}",
                    text="…",
                    tags=rng.choice(
                        [
                            {"complaint": True},
                            {"competitor_views": 1},
                            {"sentiment": "negative"},
                            {"delivery_delay": True},
                            {"sentiment": "positive"},
                        ]
                    ),
                    created_at=START - timedelta(days=rng.randint(0, 20)),
                )
            )
        for _ in range(opportunities // 3):
            s.add(
                TagChange(
                    subject_type="customer",
                    subject_id=rng.choice(ids),
                    tag=rng.choice(["nps", "competitor_views"]),
                    old_value=rng.randint(0, 50),
                    new_value=rng.randint(0, 50),
                    source="event:bench",
                    at=START - timedelta(days=rng.randint(0, 20)),
                )
            )
    return engine


def io_floor(engine: Engine, now: datetime) -> None:
    """Read what recompute_health reads and write a constant score: the baseline."""
    with session_scope(engine) as s:
        opps = list(s.exec(select(Opportunity).where(Opportunity.status == "open")))
        list(s.exec(select(Customer)))
        list(s.exec(select(Signal).where(Signal.created_at >= now - timedelta(days=30))))
        list(s.exec(select(TagChange).where(TagChange.at >= now - timedelta(days=30))))
        stored = {h.opportunity_id: h for h in s.exec(select(OpportunityHealth))}
        for o in opps:
            row = stored.get(o.id) or OpportunityHealth(opportunity_id=o.id, score=100, computed_at=now)
            row.score, row.computed_at = 100, now
            s.add(row)


def bench_health(opportunities: int = 10000, repeat: int = 3) -> Measure:
    runs, base = [], []
    with tempfile.TemporaryDirectory() as d:
        engine = _health_db(Path(d), opportunities)
        config = HealthConfig()
        recompute_health(engine, START, config)  # first run creates the rows; measured runs update them
        io_floor(engine, START)
        for day in range(1, repeat + 1):
            now = START + timedelta(days=day)
            began = time.perf_counter()
            recompute_health(engine, now, config)
            runs.append(time.perf_counter() - began)
            began = time.perf_counter()
            io_floor(engine, now)
            base.append(time.perf_counter() - began)
        engine.dispose()
    return Measure(
        f"health recomputation, {opportunities} open opportunities, SQLite",
        "s",
        runs,
        "io-floor",
        base,
        f"{opportunities // 5} notes and {opportunities // 3} tag changes in the window.",
    )
