"""Customer-journey breakpoints: rules in YAML with CEL conditions, evaluated on each subject's timeline.

A rule has a trigger (``when``, over ``event`` and ``customer``) and, optionally, something that
must follow it within a window (``unless``, over ``event``, ``other`` and ``customer``, with
``within``). Without ``unless`` the trigger itself is the breakpoint. With it, the trigger is kept
as pending and ``evaluate_due(now)`` decides once the window (plus an allowed lateness for
out-of-order events) has passed: a breakpoint unless some event of the same customer or visitor in
``(trigger, trigger + within]`` satisfies ``unless``. Either way a rule produces at most one
breakpoint per subject per episode (``once_per``, default one day in China time), enforced by a
unique key, so replays, duplicates and shuffled arrival give the same breakpoints.

Fail closed: a condition counts only when it evaluates to the BOOL ``True``; a missing field, a
wrong type or any error is "no".
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cel
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from skills.notices import Notice
from skills.signals import texts
from storage.db import session_scope
from storage.models import Breakpoint, Customer, JourneyEvent, JourneyPending, User
from storage.yamlfile import FileInvalid, LocatedYaml, Problem

log = logging.getLogger(__name__)
CHINA = timedelta(hours=8)  # episodes are counted in China time (no daylight saving)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WHEN_VARS = frozenset({"event", "customer"})
UNLESS_VARS = frozenset({"event", "other", "customer"})


def parse_duration(text: str) -> timedelta:
    """'90s', '8m', '24h', '1d'."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"时长格式应为 数字+s/m/h/d，例如 24h，而不是 {text!r}")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    role: str = "rep"
    events: list[str] = Field([], description="event kinds that can trigger; empty = all")
    when: str = Field(min_length=1)
    unless: str | None = None
    within: str | None = None
    once_per: str = "1d"

    @model_validator(mode="after")
    def _pairs(self) -> RuleIn:
        if (self.unless is None) != (self.within is None):
            raise ValueError("unless 和 within 要一起写（在 within 时间内没有 unless 描述的事件才算断点）")
        return self


class JourneyFileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleIn] = Field(min_length=1)


@dataclass(frozen=True)
class JourneyRule:
    id: str
    name: str
    role: str
    on: frozenset[str]
    when_src: str
    when: Any  # cel.Program
    unless_src: str | None = None
    unless: Any = None
    within: timedelta | None = None
    once_per: timedelta = timedelta(days=1)
    # the fields the conditions read (None = the whole map): converting fewer map entries into CEL
    # values is most of the cost of an evaluation
    event_fields: frozenset[str] | None = None
    other_fields: frozenset[str] | None = None
    uses_customer: bool = True

    def episode(self, at: datetime) -> str:
        local = at.astimezone(UTC) + CHINA
        step = int(self.once_per.total_seconds())
        start = int(local.replace(tzinfo=UTC).timestamp()) // step * step
        return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass
class JourneyRules:
    rules: list[JourneyRule]
    errors: dict[str, int] = field(default_factory=dict)  # rule id -> evaluations that failed (fail closed)
    # one conversion per event, shared by its rules; the result needs ``add_variable(name, value)``
    context: Callable[[dict[str, Any]], Any] = cel.Context
    _needs: dict[str, Any] = field(default_factory=dict, repr=False)

    def by_id(self) -> dict[str, JourneyRule]:
        return {r.id: r for r in self.rules}

    def for_kind(self, kind: str) -> list[JourneyRule]:
        return [r for r in self.rules if not r.on or kind in r.on]

    def needs(self, kind: str) -> tuple[list[JourneyRule], frozenset[str] | None, bool]:
        """The rules an event of ``kind`` can trigger, the event fields they read, whether any reads
        ``customer``."""
        cached = self._needs.get(kind)
        if cached is None:
            rules = self.for_kind(kind)
            fields: set[str] | None = set()
            for r in rules:
                if r.event_fields is None or fields is None:
                    fields = None
                else:
                    fields |= r.event_fields
            cached = self._needs[kind] = (rules, None if fields is None else frozenset(fields),
                                          any(r.uses_customer for r in rules))
        return cached

    def check(self, program: Any, rule_id: str, ctx: Any) -> bool:
        """True only for the BOOL True; any error counts as no (and is counted)."""
        try:
            return program.execute(ctx) is True
        except Exception as exc:
            if rule_id not in self.errors:  # tell the operator once per rule, then count
                log.warning("journey rule %s could not be evaluated (counts as false): %s", rule_id, exc)
            self.errors[rule_id] = self.errors.get(rule_id, 0) + 1
            return False


def load_journey_rules(path: Path) -> JourneyRules:
    """Read and compile the rules file; any problem refuses the whole file with file:line: field."""
    doc = LocatedYaml(path)
    data = doc.validate(JourneyFileIn)
    return compile_rules(data, doc)


def compile_rules(data: JourneyFileIn, doc: LocatedYaml | None = None) -> JourneyRules:
    problems: list[Problem] = []

    def problem(loc: list[str | int], reason: str) -> None:
        problems.append(doc.problem(loc, reason) if doc else Problem("<rules>", None, ".".join(map(str, loc)),
                                                                      reason))

    out: list[JourneyRule] = []
    seen: set[str] = set()
    for i, r in enumerate(data.rules):
        if r.id in seen:
            problem(["rules", i, "id"], f"规则 id 重复：{r.id}")
        seen.add(r.id)
        when = _compile(r.when, WHEN_VARS, ["rules", i, "when"], problem)
        unless = _compile(r.unless, UNLESS_VARS, ["rules", i, "unless"], problem) if r.unless else None
        within = once = None
        for key, value in (("within", r.within), ("once_per", r.once_per)):
            if value is None:
                continue
            try:
                parsed = parse_duration(value)
                if parsed <= timedelta(0):
                    raise ValueError("时长必须大于 0")
            except ValueError as exc:
                problem(["rules", i, key], str(exc))
                continue
            if key == "within":
                within = parsed
            else:
                once = parsed
        if when is not None and (r.unless is None or unless is not None):
            both = r.when + " " + (r.unless or "")
            out.append(JourneyRule(r.id, r.name, r.role, frozenset(r.events), r.when, when, r.unless, unless,
                                   within, once or timedelta(days=1), fields_read(both, "event"),
                                   fields_read(r.unless or "", "other"), "customer" in _roots(both)))
    if problems:
        raise FileInvalid(problems)
    return JourneyRules(out)


def _compile(src: str, allowed: frozenset[str], loc: list[str | int], problem: Any) -> Any:
    try:
        program = cel.compile(src)
    except Exception as exc:
        problem(loc, f"CEL 表达式无法解析：{str(exc).splitlines()[0]}")
        return None
    roots = {v.split(".")[0] for v in program.variables()}
    unknown = roots - allowed - _bound_names(src)
    if unknown:
        problem(loc, f"未知变量 {', '.join(sorted(unknown))}；可用：{', '.join(sorted(allowed))}")
        return None
    return program


def _roots(src: str) -> set[str]:
    return set(re.findall(r"(?<![\w.\"'])([A-Za-z_]\w*)\b", _strip_strings(src)))


def _strip_strings(src: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', src)


def fields_read(src: str, root: str) -> frozenset[str] | None:
    """Fields of ``root`` the expression reads as ``root.field``; None when it uses ``root`` otherwise
    (``root["x"]``, ``"x" in root``, passing it whole), so the whole map is needed."""
    code = _strip_strings(src)
    uses = len(re.findall(rf"(?<![\w.]){root}\b", code))
    dotted = re.findall(rf"(?<![\w.]){root}\.([A-Za-z_]\w*)", code)
    return frozenset(dotted) if uses == len(dotted) else None


def _bound_names(src: str) -> set[str]:
    """Names bound by comprehension macros (``x`` in ``list.exists(x, ...)``)."""
    return set(re.findall(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,", src))


# evaluation ----------------------------------------------------------------------------------------

_EVENT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "kind": lambda e: e.kind,
    "page": lambda e: e.page,
    "page_type": lambda e: e.page_type,
    "source": lambda e: e.source,
    "region": lambda e: e.region or "",
    "data": lambda e: e.data or {},
    "hour": lambda e: (e.at.astimezone(UTC) + CHINA).hour,
    "dwell_seconds": lambda e: None if e.dwell_seconds is None else float(e.dwell_seconds),
    "interactions": lambda e: None if e.interactions is None else int(e.interactions),
}


def event_map(e: Any, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """What a rule sees as ``event`` / ``other`` (only ``fields`` when given). Optional measures are
    absent when not reported, so a rule on them is false for events that lack them (fail closed)."""
    m: dict[str, Any] = {}
    for name, read in _EVENT_FIELDS.items():
        if fields is None or name in fields:
            value = read(e)
            if value is not None:
                m[name] = value
    return m


def customer_map(c: Customer | None) -> dict[str, Any]:
    return {} if c is None else {"id": c.id, "region": c.region, "tags": c.tags or {}}


@dataclass(frozen=True)
class Candidate:
    rule: JourneyRule
    event: Any  # a JourneyEvent or a row of its table


@dataclass
class Outcome:
    """What one ingest or evaluate_due produced."""

    breakpoints: list[Breakpoint] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    pending: int = 0


def on_new_events(session: Session, rules: JourneyRules, events: Sequence[Any],
                  customers: dict[str, Customer], now: datetime) -> tuple[list[Candidate], int]:
    """Evaluate triggers of freshly stored events: instant breakpoints now, windows as pending rows."""
    instant: list[Candidate] = []
    pending: list[dict[str, Any]] = []
    for e in events:
        candidates, fields, with_customer = rules.needs(e.kind)
        if not candidates:
            continue
        variables = {"event": event_map(e, fields)}
        if with_customer:
            variables["customer"] = customer_map(customers.get(e.customer_id or ""))
        ctx = rules.context(variables)
        for rule in candidates:
            if not rules.check(rule.when, rule.id, ctx):
                continue
            if rule.unless is None:
                instant.append(Candidate(rule, e))
            else:
                assert rule.within is not None
                pending.append({"rule_id": rule.id, "trigger_event_id": e.id, "subject": e.subject,
                                "due_at": e.at + rule.within})
    if pending:
        session.execute(insert_ignoring(session, JourneyPending, ["rule_id", "trigger_event_id"]), pending)
    return instant, len(pending)


def evaluate_due(engine: Engine, rules: JourneyRules, now: datetime, *, lateness: timedelta = timedelta(0),
                 repeat_days: int = 7) -> Outcome:
    """Decide every pending window that closed at least ``lateness`` ago: new breakpoints and alerts."""
    by_id = rules.by_id()
    with session_scope(engine) as session:
        due = list(session.exec(select(JourneyPending).where(JourneyPending.due_at <= now - lateness)
                                .order_by(col(JourneyPending.due_at))))
        if not due:
            return Outcome()
        events = JourneyEvent.__table__  # plain rows (attribute access, no ORM identity map): faster
        triggers = {e.id: e for e in session.execute(select(events).where(
            events.c.id.in_({p.trigger_event_id for p in due})))}
        customers = _customers(session, {e.customer_id for e in triggers.values() if e.customer_id})
        found: list[Candidate] = []
        spans: dict[str, tuple[datetime, datetime]] = {}
        for p in due:
            trigger = triggers.get(p.trigger_event_id)
            if trigger is not None:
                lo, hi = spans.get(p.subject, (trigger.at, p.due_at))
                spans[p.subject] = (min(lo, trigger.at), max(hi, p.due_at))
        timelines: dict[str, list[Any]] = {}
        subjects = sorted(spans)
        for i in range(0, len(subjects), 500):  # one query per 500 subjects, over their joint span
            part = subjects[i:i + 500]
            lo, hi = min(spans[x][0] for x in part), max(spans[x][1] for x in part)
            in_span = (events.c.subject.in_(part), events.c.at >= lo, events.c.at <= hi)
            for e in session.execute(select(events).where(*in_span).order_by(events.c.at)):
                timelines.setdefault(e.subject, []).append(e)
        for p in due:
            rule, trigger = by_id.get(p.rule_id), triggers.get(p.trigger_event_id)
            if rule is None or trigger is None or rule.within is None:
                continue  # the rule was removed from the file since: nothing to decide
            timeline = timelines.get(p.subject, [])
            if not _followed(rules, rule, trigger, timeline, customers.get(trigger.customer_id or "")):
                found.append(Candidate(rule, trigger))
        pending = JourneyPending.__table__
        session.execute(delete(pending).where(pending.c.id.in_([p.id for p in due])))
        return record_breakpoints(session, found, customers, now, repeat_days)


def _followed(rules: JourneyRules, rule: JourneyRule, trigger: Any, timeline: list[Any],
              customer: Customer | None) -> bool:
    assert rule.within is not None
    end = trigger.at + rule.within
    ctx = None
    start = bisect.bisect_right(timeline, trigger.at, key=lambda e: e.at)  # sorted by time
    for other in timeline[start:]:
        if other.at > end:
            break
        if other.id == trigger.id:
            continue
        if ctx is None:  # converted once per trigger; only ``other`` changes between checks
            variables = {"event": event_map(trigger, rule.event_fields)}
            if rule.uses_customer:
                variables["customer"] = customer_map(customer)
            ctx = rules.context(variables)
        ctx.add_variable("other", event_map(other, rule.other_fields))
        if rules.check(rule.unless, rule.id, ctx):
            return True
    return False


def record_breakpoints(session: Session, found: Iterable[Candidate], customers: dict[str, Customer],
                       now: datetime, repeat_days: int) -> Outcome:
    """Insert breakpoints (one per subject, rule, episode) and write alerts for the new ones."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    names: dict[str, str] = {}
    for c in sorted(found, key=lambda c: (c.event.at, c.event.event_id)):
        key = (c.rule.id, c.event.subject, c.rule.episode(c.event.at))
        if key in rows:
            continue
        names[c.rule.id] = c.rule.name
        customer = customers.get(c.event.customer_id or "")
        rows[key] = {"rule_id": c.rule.id, "subject": c.event.subject, "episode": key[2],
                     "customer_id": c.event.customer_id, "role": c.rule.role,
                     "region": (customer.region if customer else None) or c.event.region or "未知",
                     "trigger_event_id": c.event.event_id, "at": c.event.at, "detected_at": now}
    if not rows:
        return Outcome()
    stmt = insert_ignoring(session, Breakpoint, ["rule_id", "subject", "episode"])
    new_ids = [r[0] for r in session.execute(stmt.returning(Breakpoint.__table__.c.id), list(rows.values()))]
    if not new_ids:
        return Outcome()
    created = list(session.exec(select(Breakpoint).where(col(Breakpoint.id).in_(new_ids)).order_by(
        col(Breakpoint.at))))
    return Outcome(created, alerts(session, created, customers, repeat_days, names))


def alerts(session: Session, created: list[Breakpoint], customers: dict[str, Customer],
           repeat_days: int, names: dict[str, str] | None = None) -> list[Notice]:
    """The owning rep hears of each breakpoint; their manager too when it repeats within the window."""
    created = [bp for bp in created if bp.customer_id in customers]  # anonymous visitors: heatmap only
    if not created:
        return []
    rule_names = names or {}
    window = timedelta(days=repeat_days)
    history: dict[tuple[str, str], list[datetime]] = {}
    recent = select(Breakpoint.subject, Breakpoint.rule_id, Breakpoint.at).where(
        col(Breakpoint.subject).in_({bp.subject for bp in created}),
        col(Breakpoint.at) >= min(bp.at for bp in created) - window)
    for subject, rule_id, at in session.exec(recent):
        history.setdefault((subject, rule_id), []).append(at)
    owners = {c.owner_id for c in customers.values()}
    users = {u.id: u for u in session.exec(select(User).where(col(User.id).in_(owners)))}
    notices: list[Notice] = []
    for bp in created:
        customer = customers[bp.customer_id or ""]
        count = sum(1 for at in history.get((bp.subject, bp.rule_id), []) if bp.at - window <= at <= bp.at)
        rule = rule_names.get(bp.rule_id, bp.rule_id)
        at = (bp.at.astimezone(UTC) + CHINA).strftime("%m-%d %H:%M")
        text = texts.BREAKPOINT_ALERT.format(customer=customer.name, rule=rule, at=at,
                                             role=texts.ROLE_NAMES.get(bp.role, bp.role))
        if count > 1:
            text += texts.BREAKPOINT_REPEAT.format(days=repeat_days, count=count)
        notices.append(Notice(customer.owner_id, text, kind="breakpoint"))
        owner = users.get(customer.owner_id)
        if count > 1 and owner and owner.manager_id:
            notices.append(Notice(owner.manager_id, texts.BREAKPOINT_MANAGER.format(
                customer=customer.name, owner=owner.name, rule=rule, days=repeat_days, count=count),
                kind="breakpoint"))
    return notices


def _customers(session: Session, ids: set[str]) -> dict[str, Customer]:
    if not ids:
        return {}
    return {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(ids)))}


def insert_ignoring(session: Session, model: Any, keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model.__table__).on_conflict_do_nothing(index_elements=keys)
