"""Journey events in, breakpoints out: exactly once each, whatever the order or duplicates."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from skills.signals.events import EventRejected, ingest_journey_events, ingest_tag_event
from skills.signals.journey import JourneyRules, evaluate_due, load_journey_rules
from skills.signals.tags import tag_hooks
from storage.models import Breakpoint, Customer, JourneyEvent, TagChange, TagEvent
from storage.seed import seed_org
from storage.yamlfile import FileInvalid
from tests.conftest import EXAMPLES

EVENTS = [json.loads(line) for line in (EXAMPLES / "journey_events.jsonl").read_text("utf-8").splitlines()]
LATER = datetime(2026, 12, 5, tzinfo=UTC)
EXPECTED = {
    ("params-no-appointment", "bj-xiehe", "2026-11-20T00:00"),
    ("dwell-no-interaction", "bj-xiehe", "2026-11-20T00:00"),
    ("price-compare-stuck", "js-renmin", "2026-11-21T00:00"),
    ("competitor-page-hot", "bj-jst", "2026-11-20T00:00"),
    ("competitor-page-hot", "bj-jst", "2026-11-24T00:00"),
    ("demo-form-abandoned", "js-gulou", "2026-11-26T00:00"),
    ("competitor-page-hot", "js-gulou", "2026-11-26T00:00"),
    ("params-no-appointment", "visitor:v1", "2026-11-20T00:00"),
    ("quote-viewed-no-contact", "visitor:v2", "2026-11-27T00:00"),
}


@pytest.fixture
def rules() -> JourneyRules:
    return load_journey_rules(EXAMPLES / "journey.yaml")


@pytest.fixture
def org(engine: Engine) -> Engine:
    seed_org(engine, EXAMPLES / "org.yaml")
    return engine


def breakpoints(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as s:
        return [(b.rule_id, b.subject, b.episode) for b in s.exec(select(Breakpoint))]


def test_replay_in_order_gives_exactly_the_expected_breakpoints(org: Engine, rules: JourneyRules) -> None:
    report = ingest_journey_events(org, EVENTS, source="web", rules=rules, now=LATER)
    assert report.accepted == len(EVENTS) and report.duplicates == 0 and not report.rejected
    instant = {(b.rule_id, b.subject) for b in report.outcome.breakpoints}
    assert instant == {("dwell-no-interaction", "bj-xiehe"), ("competitor-page-hot", "bj-jst"),
                       ("competitor-page-hot", "js-gulou")}
    due = evaluate_due(org, rules, LATER)
    found = breakpoints(org)
    assert sorted(found) == sorted(EXPECTED)  # a list: no breakpoint twice
    assert evaluate_due(org, rules, LATER).breakpoints == []  # nothing left pending

    to = [(n.to, n.text) for n in report.notices + due.notices]
    assert any(t == "lisi" and "竞品浏览多的客户又在看竞品对比" in x and "第 2 次" in x for t, x in to)
    assert any(t == "wangjing" and "积水潭" in x and "2 次" in x for t, x in to)  # manager on repeat
    assert any(t == "zhangsan" and "查看产品参数后 24 小时内未预约" in x for t, x in to)
    assert not any(t == "lihua" for t, _ in to)  # no repeats in 江苏
    assert rules.errors.get("dwell-no-interaction") == 1  # e2 reports no interaction count: fail closed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_and_duplicated_events_give_the_same_breakpoints(org: Engine, rules: JourneyRules,
                                                                  seed: int) -> None:
    rng = random.Random(seed)
    stream = EVENTS + rng.sample(EVENTS, 10)
    rng.shuffle(stream)
    sizes, i = [], 0
    while i < len(stream):
        sizes.append(stream[i:i + rng.randint(1, 7)])
        i += len(sizes[-1])
    accepted = duplicates = 0
    for batch in sizes:
        report = ingest_journey_events(org, batch, source="web", rules=rules, now=LATER)
        accepted += report.accepted
        duplicates += report.duplicates
        evaluate_due(org, rules, datetime(2026, 11, 19, tzinfo=UTC))  # nothing is due yet: no-op
    assert accepted == len(EVENTS) and duplicates == 10
    evaluate_due(org, rules, LATER)
    ingest_journey_events(org, EVENTS, source="web", rules=rules, now=LATER)  # a full replay later
    evaluate_due(org, rules, LATER)
    assert sorted(breakpoints(org)) == sorted(EXPECTED)


def test_live_stream_decides_windows_only_once_they_have_passed(org: Engine, rules: JourneyRules) -> None:
    ordered = sorted(EVENTS, key=lambda e: e["at"])
    for e in ordered:
        at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
        evaluate_due(org, rules, at, lateness=timedelta(minutes=5))
        ingest_journey_events(org, [e], source="web", rules=rules, now=at)
    assert ("params-no-appointment", "bj-xiehe", "2026-11-20T00:00") in breakpoints(org)
    assert ("quote-viewed-no-contact", "visitor:v2", "2026-11-27T00:00") not in breakpoints(org)  # still open
    evaluate_due(org, rules, datetime(2026, 11, 29, 1, 4, tzinfo=UTC), lateness=timedelta(minutes=5))
    assert ("quote-viewed-no-contact", "visitor:v2", "2026-11-27T00:00") not in breakpoints(org)  # lateness
    evaluate_due(org, rules, datetime(2026, 11, 29, 1, 6, tzinfo=UTC), lateness=timedelta(minutes=5))
    assert sorted(breakpoints(org)) == sorted(EXPECTED)


def test_invalid_journey_events_are_reported_and_the_rest_kept(org: Engine, rules: JourneyRules) -> None:
    batch = [
        {"event_id": "x1", "kind": "page_view", "customer": "bj-xiehe", "at": "2026-11-20T02:00:00Z"},
        {"event_id": "x2", "kind": "page_view", "at": "2026-11-20T02:00:00Z"},  # nobody
        {"event_id": "x3", "kind": "page_view", "customer": "bj-xiehe", "at": "2026-11-20T02:00:00"},  # naive
        {"event_id": "x4", "kind": "page_view", "customer": "nope", "at": "2026-11-20T02:00:00Z"},
        {"event_id": "x5", "kind": "Page View", "visitor": "v", "at": "2026-11-20T02:00:00Z"},
    ]
    report = ingest_journey_events(org, batch, source="app", rules=rules, now=LATER)
    assert report.accepted == 1 and len(report.rejected) == 4
    reasons = " ".join(r for _, r in report.rejected)
    assert "customer or visitor" in reasons and "timezone" in reasons and "unknown customer 'nope'" in reasons
    with Session(org) as s:
        [row] = s.exec(select(JourneyEvent)).all()
        assert row.source == "app" and row.subject == "bj-xiehe"


def test_tag_events_are_idempotent_and_reach_the_hooks(org: Engine) -> None:
    seen = []
    event = {"event_id": "crm-1", "customer": "bj-xiehe", "tags": {"nps": 20, "last_order_amount": 99000},
             "kind": "nps", "at": "2026-11-28T02:00:00Z"}
    with tag_hooks.registered(seen.append):
        first = ingest_tag_event(org, event, source="crm")
        again = ingest_tag_event(org, {**event, "tags": {"nps": -50}}, source="crm")
    assert first.status == "accepted" and again.status == "duplicate" and len(seen) == 1
    assert {(c.tag, c.old_value, c.new_value) for c in first.changes} == {
        ("nps", 42, 20), ("last_order_amount", 1280000, 99000)}
    with Session(org) as s:
        customer = s.get(Customer, "bj-xiehe")
        assert customer is not None and customer.tags["nps"] == 20
        assert len(s.exec(select(TagEvent)).all()) == 1
        sources = {t.source for t in s.exec(select(TagChange).where(TagChange.tag == "nps"))}
        assert "event:crm:crm-1" in sources
    with pytest.raises(EventRejected, match="unknown customer"):
        ingest_tag_event(org, {**event, "event_id": "crm-2", "customer": "nope"}, source="crm")
    with pytest.raises(EventRejected, match="lower_snake_case"):
        ingest_tag_event(org, {**event, "event_id": "crm-3", "tags": {"NPS!": 1}}, source="crm")


def test_a_tag_event_feeds_the_next_breakpoint_condition(org: Engine, rules: JourneyRules) -> None:
    view = {"event_id": "p1", "kind": "page_view", "customer": "bj-fuwai", "page_type": "competitor_compare",
            "at": "2026-11-20T02:00:00Z"}
    assert ingest_journey_events(org, [view], source="web", rules=rules).outcome.breakpoints == []
    ingest_tag_event(org, {"event_id": "crm-9", "customer": "bj-fuwai", "tags": {"competitor_views": 4}},
                     source="crm")
    report = ingest_journey_events(org, [{**view, "event_id": "p2"}], source="web", rules=rules)
    assert [(b.rule_id, b.region) for b in report.outcome.breakpoints] == [("competitor-page-hot", "北京")]


@pytest.mark.parametrize(("body", "expected"), [
    ("  - {id: a, name: A, when: 'event.kind ==', }", ":3: rules[0].when: CEL 表达式无法解析"),
    ("  - {id: a, name: A, when: 'visitor.kind == \"x\"'}", ":3: rules[0].when: 未知变量 visitor"),
    ("  - {id: a, name: A, when: 'true', within: 1h}", ":3: rules[0]: Value error, unless 和 within"),
    ("  - {id: a, name: A, when: 'true', unless: 'true', within: soon}", ":3: rules[0].within: 时长格式"),
    ("  - {id: a, name: A, when: 'true'}\n  - {id: a, name: B, when: 'true'}",
     ":4: rules[1].id: 规则 id 重复"),
    ("  - {id: a, name: A, when: 'true', typo: 1}", ":3: rules[0].typo: 未知字段"),
])
def test_a_bad_rules_file_is_refused_with_file_line_and_field(tmp_path: Path, body: str,
                                                              expected: str) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text("# rules\nrules:\n" + body + "\n", encoding="utf-8")
    with pytest.raises(FileInvalid) as err:
        load_journey_rules(path)
    assert f"{path}{expected}" in str(err.value)


def test_fields_read_by_a_condition() -> None:
    from skills.signals.journey import fields_read

    both = 'event.page_type == "params" && event.data.action == "x"'
    assert fields_read(both, "event") == {"page_type", "data"}
    assert fields_read('other.kind == "appointment"', "other") == {"kind"}
    assert fields_read('event.page == "event.kind"', "event") == {"page"}  # not inside strings
    assert fields_read('"kind" in other', "other") is None  # the whole map is needed


def test_cel_rules_and_python_predicates_find_the_same_breakpoints(tmp_path: Path) -> None:
    """Differential check of the engine (field pruning, contexts) against plain Python conditions."""
    from skills.signals.bench import bench_rules, journey_run, python_rules
    from skills.signals.journey import JourneyFileIn, compile_rules

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, with_cel = journey_run(1500, compile_rules(JourneyFileIn(rules=bench_rules())), tmp_path / "a")
    _, with_python = journey_run(1500, python_rules(bench_rules()), tmp_path / "b")
    assert with_cel == with_python > 100
