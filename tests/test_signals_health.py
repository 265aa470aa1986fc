"""Opportunity health: the score and its reasons, decay between days, the daily digest, the jobs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.channels.terminal import TerminalChannel
from bot.identity import Directory
from bot.jobs_signals import deliver, run_digest, schedule_jobs
from bot.messages import Reply
from bot.router import Router
from bot.settings import Settings
from skills.signals.health import Health, HealthConfig, daily_digest, recompute_health, score_opportunity
from skills.signals.heatmap import format_table, heatmap_counts, render_png
from skills.signals.journey import evaluate_due, load_journey_rules
from skills.signals.notes import record_note
from storage.models import Opportunity, OpportunityHealth, Signal
from storage.seed import seed_org
from tests.conftest import EXAMPLES
from tests.test_chat import run_cli

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
DAY2 = NOW + timedelta(days=1)


def opp(stage: str = "方案评估", stage_days: int = 45, idle_days: int = 21) -> Opportunity:
    return Opportunity(
        id="o1",
        customer_id="c1",
        products=["P"],
        stage=stage,
        amount=Decimal(1),
        stage_since=NOW - timedelta(days=stage_days),
        last_activity=NOW - timedelta(days=idle_days),
    )


def note(**tags: object) -> Signal:
    return Signal(customer_id="c1", rep_id="r", text="", tags=dict(tags), created_at=NOW)


@pytest.mark.parametrize(
    ("o", "signals", "score", "reasons"),
    [
        (opp(stage_days=10, idle_days=3), [], 100, []),
        (opp(stage_days=45, idle_days=3), [], 85, ["在「方案评估」阶段 45 天（通常 30 天）"]),
        (opp(stage_days=10, idle_days=21), [], 72, ["已 21 天无拜访"]),
        (
            opp(stage_days=90, idle_days=60),
            [],
            35,
            ["已 60 天无拜访", "在「方案评估」阶段 90 天（通常 30 天）"],
        ),
        (
            opp(stage_days=10, idle_days=21),
            [note(competitor_views=1, competitor_price_gap=10)],
            62,
            ["已 21 天无拜访", "竞品报价出现"],
        ),
        (
            opp(stage_days=10, idle_days=3),
            [
                note(complaint=True, sentiment="negative"),
                note(delivery_delay=True),
                note(meeting_cut_short=True),
                note(competitor_views=2),
            ],
            70,
            ["客户投诉", "竞品报价出现", "到货延迟", "客户情绪负面"],
        ),  # notes count 30 at most
        (opp(stage_days=10, idle_days=3), [note(sentiment="positive")], 100, []),
        (
            opp(stage="商务谈判", stage_days=31, idle_days=3),
            [],
            86,
            ["在「商务谈判」阶段 31 天（通常 21 天）"],
        ),
    ],
)
def test_score_and_reasons(o: Opportunity, signals: list[Signal], score: int, reasons: list[str]) -> None:
    got, why = score_opportunity(o, NOW, signals, [], HealthConfig())
    assert got == score
    assert [r["text"] for r in why if r["points"] > 0] == reasons


def test_explanation_reads_like_the_product_text() -> None:
    h = Health(
        "opp-9",
        "c",
        "协和",
        "zhangsan",
        "方案评估",
        42,
        60,
        [
            {"code": "idle", "points": 28, "text": "已 21 天无拜访"},
            {"code": "competitor", "points": 10, "text": "竞品报价出现"},
        ],
    )
    assert h.explain() == "健康度 42，下降 18：已 21 天无拜访，竞品报价出现"
    assert h.decaying(HealthConfig()) and "差异化价值" in h.next_step()


@pytest.fixture
def org(engine: Engine) -> Engine:
    seed_org(engine, EXAMPLES / "org.yaml")
    return engine


def by_id(rows: list[Health]) -> dict[str, Health]:
    return {h.opportunity_id: h for h in rows}


def test_known_decay_between_two_days(org: Engine) -> None:
    day1 = by_id(recompute_health(org, NOW))
    assert day1["opp-001"].score == 76 and day1["opp-001"].previous is None
    assert "opp-015" not in day1  # won: not scored

    out = record_note(
        org, "zhangsan", "协和 CT项目 王主任说竞品报价低了10%，还投诉了售后", now=NOW + timedelta(hours=11)
    )
    assert out.opportunity_id == "opp-001"
    day2 = by_id(recompute_health(org, DAY2))
    h = day2["opp-001"]
    assert (h.score, h.previous, h.delta) == (49, 76, -27)
    assert h.explain() == (
        "健康度 49，下降 27：在「方案评估」阶段 55 天（通常 30 天），客户投诉，竞品报价出现，客户情绪负面"
    )  # the note was activity: no idle penalty
    assert "先处理投诉" in h.next_step() and h.decaying(HealthConfig())
    assert day2["opp-002"].score == 97  # same customer, other opportunity: only the tag trend counts

    again = by_id(recompute_health(org, DAY2 + timedelta(hours=3)))  # same day: previous stays
    assert again["opp-001"].previous == 76
    with Session(org) as s:
        row = s.get(OpportunityHealth, "opp-001")
        assert row is not None and row.previous_score == 76 and row.reasons[0]["code"] == "stage"


def test_daily_digest_for_reps_and_managers_through_the_terminal_channel(org: Engine) -> None:
    recompute_health(org, NOW)
    record_note(
        org, "zhangsan", "协和 CT项目 王主任说竞品报价低了10%，还投诉了售后", now=NOW + timedelta(hours=11)
    )
    notices = {n.to: n.text for n in daily_digest(org, DAY2)}
    assert set(notices) == {"zhangsan", "lisi", "wangwu", "chenchen", "sunyue", "wangjing", "lihua", "zhoujh"}
    mine = notices["zhangsan"]
    assert mine.startswith("早上好，张三。今天需要关注的商机（2 个）：")
    assert "opp-001｜北京协和医院｜方案评估｜健康度 49，下降 27" in mine and "下一步：先处理投诉" in mine
    assert "opp-003" in mine and "opp-002" not in mine
    assert "张三｜opp-001" in notices["wangjing"] and "opp-001" not in notices["lihua"]
    assert "张三｜opp-001" in notices["zhoujh"] and "陈晨｜opp-011" in notices["zhoujh"]

    out = io.StringIO()
    channel = TerminalChannel(Router(Directory(org)), Directory(org), "zhangsan", io.StringIO(), out)

    async def send(user: str, reply: Reply) -> None:
        await channel.send(user, reply)

    import asyncio

    sent = asyncio.run(deliver(daily_digest(org, DAY2 + timedelta(hours=1)), send))
    assert sent == 8 and "早上好，张三" in out.getvalue() and "早上好，王静" not in out.getvalue()


async def test_scheduler_jobs_and_the_digest_job(org: Engine, tmp_path: Path) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    settings = Settings(home=tmp_path, digest_hour=7)
    app = SimpleNamespace(settings=settings, engine=org)
    scheduler = AsyncIOScheduler()
    jobs = schedule_jobs(scheduler, app, lambda user, reply: None)  # type: ignore[arg-type]
    assert [j.id for j in jobs] == ["signals-daily-digest", "signals-journey-due"]
    assert "hour='7'" in repr(jobs[0].trigger) and "Asia/Shanghai" in repr(jobs[0].trigger)
    got: list[tuple[str, str]] = []

    async def send(user: str, reply: Reply) -> None:
        got.append((user, reply.text))

    assert await run_digest(app, send) == len(got) > 0  # type: ignore[arg-type]
    assert all(text.startswith("早上好") for _, text in got)


def test_heatmap_counts_table_and_png(org: Engine, tmp_path: Path) -> None:
    from skills.signals.events import ingest_journey_events

    rules = load_journey_rules(EXAMPLES / "journey.yaml")
    events = [json.loads(x) for x in (EXAMPLES / "journey_events.jsonl").read_text("utf-8").splitlines()]
    ingest_journey_events(org, events, source="web", rules=rules)
    evaluate_due(org, rules, datetime(2026, 12, 5, tzinfo=UTC))
    with Session(org) as s:
        h = heatmap_counts(s)
        assert heatmap_counts(s, since=datetime(2026, 11, 25, tzinfo=UTC)).total() == 3
    assert h.total() == 9 and h.regions == ["北京", "江苏"] and h.rules[0] == "competitor-page-hot"
    assert h.counts[("competitor-page-hot", "北京")] == 2
    names = {r.id: r.name for r in rules.rules}
    table = format_table(h, names).splitlines()
    assert table[0].split() == ["断点", "北京", "江苏", "合计"] and table[-1].split() == [
        "合计",
        "5",
        "4",
        "9",
    ]
    legend = render_png(h, names, tmp_path / "plain.png", font=None)
    assert (tmp_path / "plain.png").read_bytes()[:4] == b"\x89PNG" and legend["R1"] == "北京"
    render_png(h, names, tmp_path / "auto.png")  # a Chinese font if installed, the legend otherwise
    assert (tmp_path / "auto.png").stat().st_size > 1000


def test_cli_journey_and_health(tmp_path: Path) -> None:
    assert run_cli(["seed", str(EXAMPLES / "org.yaml")], "", tmp_path).returncode == 0
    ingest = run_cli(
        ["journey", "ingest", str(EXAMPLES / "journey_events.jsonl"), "--now", "2026-12-05"], "", tmp_path
    )
    assert ingest.returncode == 0, ingest.stderr
    assert (
        "新增 23，重复 0，拒收 0，新断点 9" in ingest.stdout
        and "→ wangjing: 团队客户旅程断点重复出现" in ingest.stdout
    )
    heat = run_cli(["journey", "heatmap", "--png", str(tmp_path / "h.png")], "", tmp_path)
    assert heat.returncode == 0 and "合计" in heat.stdout and (tmp_path / "h.png").exists()
    health = run_cli(
        ["opportunities", "health", "--rep", "zhangsan", "--now", "2026-12-01", "--json"], "", tmp_path
    )
    rows = json.loads(health.stdout)
    assert [r["opportunity"] for r in rows] == ["opp-003", "opp-001", "opp-002", "opp-004"]
    assert rows[0]["decaying"] and rows[0]["reasons"][0]["text"].startswith("已 25 天无拜访")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: a, name: A, when: 'event.kind =='}\n", encoding="utf-8")
    check = run_cli(["journey", "check", str(bad)], "", tmp_path)
    assert check.returncode == 1 and f"{bad}:2: rules[0].when: CEL 表达式无法解析" in check.stderr
