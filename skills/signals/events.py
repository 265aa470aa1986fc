"""Events in over the admin API: CRM/ERP tag updates and customer-journey touchpoints.

``ingest_tag_event`` and ``ingest_journey_events`` are what ``POST /api/events/tags`` and
``POST /api/events/journey`` call. Both validate with pydantic, store each event once by its
``event_id`` (a unique key: a retried POST changes nothing) with its source, and return what
happened plus the notices to deliver (grants opened by the tag hooks, breakpoint alerts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from skills.notices import Notice
from skills.signals.journey import JourneyRules, Outcome, insert_ignoring, on_new_events, record_breakpoints
from skills.signals.tags import TagChangeInfo, apply_tag_changes, take_hook_notices
from storage.db import session_scope
from storage.models import Customer, JourneyEvent, TagEvent
from storage.types import utcnow

_TAG_NAME = r"^[a-z][a-z0-9_]*$"
Scalar = int | float | str | bool | None


class TagEventIn(BaseModel):
    """``{"event_id": "crm-8812", "customer": "bj-xiehe", "tags": {"nps": 35}, "at": "..."}``."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=200)
    customer: str = Field(min_length=1)
    tags: dict[str, Scalar] = Field(min_length=1)
    at: AwareDatetime | None = None
    kind: str = Field("crm", description="free label: nps | order | review | crm ...")

    @field_validator("tags")
    @classmethod
    def _names(cls, tags: dict[str, Any]) -> dict[str, Any]:
        import re

        bad = [k for k in tags if not re.match(_TAG_NAME, k)]
        if bad:
            raise ValueError(f"tag names must be lower_snake_case: {', '.join(bad)}")
        return tags


class JourneyEventIn(BaseModel):
    """A touchpoint: ``kind`` page_view | dwell | interaction | appointment | leave (or another word)."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=200)
    customer: str | None = None
    visitor: str | None = None
    kind: str = Field(pattern=r"^[a-z][a-z_]*$")
    page: str = ""
    page_type: str = ""
    dwell_seconds: float | None = Field(None, ge=0)
    interactions: int | None = Field(None, ge=0)
    region: str | None = None
    source: str | None = None
    at: AwareDatetime
    data: dict[str, Any] = {}

    @model_validator(mode="after")
    def _who(self) -> JourneyEventIn:
        if not self.customer and not self.visitor:
            raise ValueError("customer or visitor is required")
        return self

    @property
    def subject(self) -> str:
        return self.customer or f"visitor:{self.visitor}"


@dataclass
class TagEventResult:
    status: str  # accepted | duplicate
    changes: list[TagChangeInfo] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


class EventRejected(ValueError):
    """The event is not valid (bad field or unknown customer); nothing was stored."""


def ingest_tag_event(engine: Engine, payload: Mapping[str, Any] | TagEventIn, *, source: str,
                     now: datetime | None = None) -> TagEventResult:
    """Store a CRM/ERP update once and apply its tags (source ``event:<source>:<event_id>``)."""
    try:
        event = payload if isinstance(payload, TagEventIn) else TagEventIn.model_validate(payload)
    except ValidationError as exc:
        raise EventRejected(_errors(exc)) from None
    received = now or utcnow()
    with session_scope(engine) as session:
        if session.get(Customer, event.customer) is None:
            raise EventRejected(f"customer: unknown customer {event.customer!r}")
        stmt = insert_ignoring(session, TagEvent, ["event_id"]).values(
            event_id=event.event_id, source=source, customer_id=event.customer, tags=event.tags,
            at=event.at or received, received_at=received)
        if not list(session.execute(stmt.returning(TagEvent.__table__.c.id))):
            return TagEventResult("duplicate")
        rows = apply_tag_changes(session, event.customer, event.tags, f"event:{source}:{event.event_id}",
                                 at=event.at or received)
        changes = [TagChangeInfo(event.customer, r.tag, r.old_value, r.new_value, r.source, r.at)
                   for r in rows]
    return TagEventResult("accepted", changes, take_hook_notices(session))


@dataclass
class JourneyIngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in the batch, reason)
    pending: int = 0
    outcome: Outcome = field(default_factory=Outcome)

    @property
    def notices(self) -> list[Notice]:
        return self.outcome.notices

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": [{"index": i, "reason": r} for i, r in self.rejected], "pending": self.pending,
                "breakpoints": [{"rule": b.rule_id, "subject": b.subject, "episode": b.episode}
                                for b in self.outcome.breakpoints]}


def ingest_journey_events(engine: Engine, events: Iterable[Mapping[str, Any] | JourneyEventIn], *,
                          source: str, rules: JourneyRules, now: datetime | None = None,
                          repeat_days: int = 7, chunk: int = 500) -> JourneyIngestReport:
    """Validate, store once by event id, and evaluate the breakpoint triggers of the new events.

    Invalid events are reported by index and skipped; valid ones in the same batch are kept.
    Windows ("no appointment within 24 h") are decided later by ``journey.evaluate_due``.
    """
    received = now or utcnow()
    report = JourneyIngestReport()
    valid: list[JourneyEventIn] = []
    for i, raw in enumerate(events):
        try:
            valid.append(raw if isinstance(raw, JourneyEventIn) else JourneyEventIn.model_validate(raw))
        except ValidationError as exc:
            report.rejected.append((i, _errors(exc)))
    with session_scope(engine) as session:
        customers = _customers(session, {e.customer for e in valid if e.customer})
        unique: dict[str, JourneyEventIn] = {}
        for e in valid:
            unique.setdefault(e.event_id, e)
        known = [e for e in unique.values() if not e.customer or e.customer in customers]
        report.rejected += [(-1, f"customer: unknown customer {e.customer!r} ({e.event_id})")
                            for e in valid if e.customer and e.customer not in customers]
        new_ids: list[int] = []
        stmt = insert_ignoring(session, JourneyEvent, ["event_id"]).returning(JourneyEvent.__table__.c.id)
        for start in range(0, len(known), chunk):  # executemany: one compiled statement, batched VALUES
            rows = [_row(e, source, received) for e in known[start:start + chunk]]
            new_ids += [r[0] for r in session.execute(stmt, rows)]
        report.accepted = len(new_ids)
        report.duplicates = len(valid) - len(new_ids) - sum(1 for e in valid if e.customer and
                                                           e.customer not in customers)
        table = JourneyEvent.__table__
        fresh = list(session.execute(select(table).where(table.c.id.in_(new_ids)).order_by(table.c.at))
                     ) if new_ids else []
        instant, report.pending = on_new_events(session, rules, fresh, customers, received)
        report.outcome = record_breakpoints(session, instant, customers, received, repeat_days)
    return report


def _row(e: JourneyEventIn, source: str, received: datetime) -> dict[str, Any]:
    return {"event_id": e.event_id, "source": e.source or source, "subject": e.subject,
            "customer_id": e.customer, "kind": e.kind, "page": e.page, "page_type": e.page_type,
            "dwell_seconds": e.dwell_seconds,
            "interactions": e.interactions, "region": e.region, "data": e.data, "at": e.at,
            "received_at": received}


def _customers(session: Session, ids: set[str]) -> dict[str, Customer]:
    if not ids:
        return {}
    return {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(ids)))}


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())
