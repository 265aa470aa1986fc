"""Opportunity health: an explainable 0-100 score per open opportunity, its decay, the daily digest.

Score = 100 minus these penalties (each with its reason in Chinese), plus a small bonus:

- stage age: days in the current stage over the typical days for it (``stage_days``):
  30 x overrun / typical, at most 30 (twice the typical age costs the full 30);
- no activity: ``idle_points_per_day`` for each day since the last activity beyond
  ``idle_grace_days``, at most 35;
- recent notes (last ``signal_days``): complaint 10, competitor quote or price gap 10, delivery
  delay 8, negative mood 6, meeting cut short 5; at most 30 together;
- tag trends (last ``signal_days``, any source but the org file): NPS fell by 10 or more: 8;
  competitor views rose (when no note already said so): 3 a view, at most 10;
- bonus: a positive note, +5.

The previous score is kept (the last one computed on an earlier day), so ``delta`` says how far an
opportunity fell; it is decaying when it fell by ``decay_points`` or more, or scores below
``alert_below``. Corrected notes count without their undone tags.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from skills.notices import Notice
from skills.signals import texts
from storage.db import session_scope
from storage.lookup import reports_to
from storage.models import Customer, Opportunity, OpportunityHealth, Signal, TagChange, User

CHINA = timedelta(hours=8)
DEFAULT_STAGE_DAYS = {"需求确认": 21, "方案评估": 30, "招标准备": 30, "商务谈判": 21}


@dataclass(frozen=True)
class HealthConfig:
    stage_days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_STAGE_DAYS))
    default_stage_days: int = 30
    idle_grace_days: int = 7
    idle_points_per_day: float = 2.0
    signal_days: int = 30
    decay_points: int = 10
    alert_below: int = 50


SIGNAL_POINTS = (  # (code, points, reason): the order reasons are read in when points tie
    ("complaint", 10, texts.REASON_COMPLAINT),
    ("competitor", 10, texts.REASON_COMPETITOR),
    ("delay", 8, texts.REASON_DELAY),
    ("negative", 6, texts.REASON_NEGATIVE),
    ("cut_short", 5, texts.REASON_CUT_SHORT),
)


NEXT_STEP_ORDER = ("complaint", "delay", "competitor", "negative", "cut_short", "nps", "competitor_views",
                   "idle", "stage")


@dataclass
class Health:
    opportunity_id: str
    customer_id: str
    customer_name: str
    owner_id: str
    stage: str
    score: int
    previous: int | None
    reasons: list[dict[str, Any]]

    @property
    def delta(self) -> int | None:
        return None if self.previous is None else self.score - self.previous

    def decaying(self, config: HealthConfig) -> bool:
        fell = self.delta is not None and self.delta <= -config.decay_points
        return fell or self.score < config.alert_below

    def explain(self) -> str:
        """'健康度 42，下降 18：已 21 天无拜访，竞品报价出现'."""
        d = self.delta
        delta = (texts.HEALTH_DOWN.format(points=-d) if d and d < 0
                 else texts.HEALTH_UP.format(points=d) if d and d > 0 else "")
        reasons = "，".join(r["text"] for r in self.reasons if r["points"] > 0) or texts.HEALTH_OK
        return texts.HEALTH_LINE.format(score=self.score, delta=delta, reasons=reasons)

    def next_step(self) -> str:
        """What to do first: what the customer said before how long things have taken."""
        codes = {r["code"] for r in self.reasons if r["points"] > 0}
        code = next((c for c in NEXT_STEP_ORDER if c in codes), "idle")
        return texts.NEXT_STEPS[code]


def score_opportunity(opp: Opportunity, now: datetime, signals: list[Signal], trends: list[TagChange],
                      config: HealthConfig) -> tuple[int, list[dict[str, Any]]]:
    """The score and its reasons for one opportunity (pure: everything it reads is passed in)."""
    reasons: list[dict[str, Any]] = []

    def add(code: str, points: int, text: str) -> None:
        if points:
            reasons.append({"code": code, "points": points, "text": text})

    if opp.stage_since is not None:
        age = (now - opp.stage_since).days
        typical = config.stage_days.get(opp.stage, config.default_stage_days)
        if age > typical:
            points = min(30, round(30 * (age - typical) / typical))
            add("stage", points, texts.REASON_STAGE.format(stage=opp.stage, days=age, typical=typical))
    last = opp.last_activity or opp.stage_since
    if last is not None:
        idle = (now - last).days
        if idle > config.idle_grace_days:
            add("idle", min(35, round((idle - config.idle_grace_days) * config.idle_points_per_day)),
                texts.REASON_IDLE.format(days=idle))

    seen: set[str] = set()
    positive = False
    for s in signals:
        tags = s.tags or {}
        if tags.get("complaint"):
            seen.add("complaint")
        if tags.get("competitor_views") or _number(tags.get("competitor_price_gap"), 0) > 0:
            seen.add("competitor")
        if tags.get("delivery_delay"):
            seen.add("delay")
        if tags.get("sentiment") == "negative":
            seen.add("negative")
        if tags.get("meeting_cut_short"):
            seen.add("cut_short")
        positive = positive or tags.get("sentiment") == "positive"
    budget = 30
    for code, points, text in SIGNAL_POINTS:
        if code in seen and budget > 0:
            add(code, min(points, budget), text)
            budget -= min(points, budget)

    nps = [t for t in trends if t.tag == "nps"]
    if nps:
        drop = _number(nps[0].old_value, None)
        end = _number(nps[-1].new_value, None)
        if drop is not None and end is not None and drop - end >= 10:
            add("nps", 8, texts.REASON_NPS_DROP.format(points=round(drop - end)))
    if "competitor" not in seen:
        rises = sum(max(0, _number(t.new_value, 0) - _number(t.old_value, 0))
                    for t in trends if t.tag == "competitor_views")
        if rises:
            add("competitor_views", min(10, round(3 * rises)),
                texts.REASON_COMPETITOR_VIEWS.format(count=round(rises)))
    if positive:
        add("positive", -5, texts.REASON_POSITIVE)
    reasons.sort(key=lambda r: -r["points"])
    score = max(0, min(100, 100 - sum(r["points"] for r in reasons)))
    return score, reasons


def _number(value: Any, default: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else default


def recompute_health(engine: Engine, now: datetime, config: HealthConfig | None = None) -> list[Health]:
    """Score every open opportunity, keep the previous day's score, return them all (worst first)."""
    config = config or HealthConfig()
    since = now - timedelta(days=config.signal_days)
    with session_scope(engine) as session:
        opps = list(session.exec(select(Opportunity).where(Opportunity.status == "open")))
        customers = {c.id: c for c in session.exec(select(Customer))}
        signals: dict[str, list[Signal]] = defaultdict(list)
        window = (col(Signal.created_at) >= since, col(Signal.created_at) <= now)
        for s in session.exec(select(Signal).where(*window).order_by(col(Signal.created_at))):
            signals[s.customer_id].append(s)
        trends: dict[str, list[TagChange]] = defaultdict(list)
        for t in session.exec(select(TagChange).where(
                TagChange.subject_type == "customer", col(TagChange.tag).in_(["nps", "competitor_views"]),
                col(TagChange.at) >= since, col(TagChange.at) <= now,
                ~col(TagChange.source).startswith("org:")).order_by(col(TagChange.at), col(TagChange.id))):
            trends[t.subject_id].append(t)
        stored = {h.opportunity_id: h for h in session.exec(select(OpportunityHealth))}
        out: list[Health] = []
        for opp in opps:
            mine = [s for s in signals.get(opp.customer_id, []) if s.opportunity_id in (None, opp.id)]
            score, reasons = score_opportunity(opp, now, mine, trends.get(opp.customer_id, []), config)
            row = stored.get(opp.id)
            if row is None:
                row = OpportunityHealth(opportunity_id=opp.id, score=score, reasons=reasons, computed_at=now)
            else:
                if _day(row.computed_at) < _day(now):
                    row.previous_score, row.previous_at = row.score, row.computed_at
                row.score, row.reasons, row.computed_at = score, reasons, now
            session.add(row)
            customer = customers[opp.customer_id]
            out.append(Health(opp.id, customer.id, customer.name, customer.owner_id, opp.stage, score,
                              row.previous_score, reasons))
    out.sort(key=lambda h: (h.score, h.opportunity_id))
    return out


def _day(at: datetime) -> str:
    return (at.astimezone(UTC) + CHINA).strftime("%Y-%m-%d")


def daily_digest(engine: Engine, now: datetime, config: HealthConfig | None = None, *,
                 limit: int = 5) -> list[Notice]:
    """Recompute, then one notice per rep with decaying opportunities and per manager for their team."""
    config = config or HealthConfig()
    health = recompute_health(engine, now, config)
    decaying = [h for h in health if h.decaying(config)]
    with Session(engine) as session:
        users = {u.id: u for u in session.exec(select(User).where(User.active == True))}  # noqa: E712
    by_rep: dict[str, list[Health]] = defaultdict(list)
    for h in decaying:
        by_rep[h.owner_id].append(h)
    notices: list[Notice] = []
    for rep_id, items in sorted(by_rep.items()):
        rep = users.get(rep_id)
        if rep is None:
            continue
        lines = [texts.DIGEST_REP_HEADER.format(name=rep.name, count=len(items))]
        lines += [texts.DIGEST_ITEM.format(n=i, opp=h.opportunity_id, customer=h.customer_name, stage=h.stage,
                                           health=h.explain(), next=h.next_step())
                  for i, h in enumerate(items[:limit], 1)]
        if len(items) > limit:
            lines.append(texts.DIGEST_MORE.format(count=len(items) - limit))
        notices.append(Notice(rep_id, "\n".join(lines), kind="digest"))
    for manager in sorted((u for u in users.values() if u.role == "manager"), key=lambda u: u.id):
        team = [h for h in decaying if reports_to(users, h.owner_id, manager.id)]
        if not team:
            continue
        lines = [texts.DIGEST_MANAGER_HEADER.format(name=manager.name, count=len(team))]
        lines += [texts.DIGEST_MANAGER_ITEM.format(n=i, rep=users[h.owner_id].name if h.owner_id in users
                                                   else h.owner_id, opp=h.opportunity_id,
                                                   customer=h.customer_name, health=h.explain())
                  for i, h in enumerate(team[:limit * 2], 1)]
        if len(team) > limit * 2:
            lines.append(texts.DIGEST_MORE.format(count=len(team) - limit * 2))
        notices.append(Notice(manager.id, "\n".join(lines), kind="digest"))
    return notices

