"""A rep's note on a customer: stored as a Signal, read into tags, applied, and correctable.

``record_note`` is the whole flow for ``/note`` and "记一下：..." (find the customer, check the
rep may write about them, extract, store, apply the tags with source ``note:<id>``);
``undo_note`` reverts all of a note's tag changes or one tag (source ``note:<id>:undo``) and
remembers the correction on the signal, so it is never applied again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from skills.notices import Notice
from skills.signals import texts
from skills.signals.extract import Extraction, Finding, ProductInfo, extract
from skills.signals.tags import TagChangeInfo, apply_tag_changes, take_hook_notices
from storage.db import session_scope
from storage.lookup import customers_mentioned, find_customer
from storage.models import AuditLog, Customer, Opportunity, Product, Signal, TagChange, User
from storage.types import utcnow

COUNTER_TAGS = frozenset({"competitor_views"})
LIST_TAGS = frozenset({"interested_products"})
_OPP_RE = re.compile(r"opp-\d+", re.IGNORECASE)
_LEAD_RE = re.compile(r"^\s*(?:帮我|麻烦)?(?:记一下|记录一下|记录|记下|记个|备注)\s*[:：,，]?\s*")


@dataclass
class NoteOutcome:
    ok: bool
    message: str = ""  # why nothing was stored, when not ok
    signal_id: int | None = None
    customer_id: str = ""
    customer_name: str = ""
    opportunity_id: str | None = None
    findings: list[Finding] = field(default_factory=list)
    changes: list[TagChangeInfo] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)  # from the tag hooks (grants opened ...)

    def text(self, product_names: dict[str, str] | None = None) -> str:
        if not self.ok:
            return self.message
        opp = texts.NOTE_OPPORTUNITY.format(id=self.opportunity_id) if self.opportunity_id else ""
        lines = [texts.NOTE_SAVED.format(customer=self.customer_name, opportunity=opp, id=self.signal_id)]
        if self.findings:
            lines.append(texts.NOTE_FOUND + "；".join(describe(f, product_names) for f in self.findings))
        if self.changes:
            lines.append(texts.NOTE_TAGS)
            lines += [texts.NOTE_TAG_LINE.format(name=texts.TAG_NAMES.get(c.tag, c.tag),
                                                 old=show(c.old_value), new=show(c.new_value))
                      for c in self.changes]
        else:
            lines.append(texts.NOTE_NOTHING)
        return "\n".join(lines)

    def buttons(self) -> tuple[tuple[str, str], ...]:
        """(label, payload): undo everything, or drop one tag (at most three tag buttons)."""
        if not self.ok or not self.changes:
            return ()
        out = [(texts.BUTTON_UNDO_ALL, f"note_undo:{self.signal_id}")]
        for c in self.changes[:3]:
            out.append((texts.BUTTON_DROP_TAG.format(name=texts.TAG_NAMES.get(c.tag, c.tag)),
                        f"note_drop:{self.signal_id}:{c.tag}"))
        return tuple(out)


def describe(f: Finding, product_names: dict[str, str] | None = None) -> str:
    value: Any = f.value
    if f.kind == "competitor" and value == "竞品":
        return f"提到竞品（未点名）（“{f.evidence}”）"
    if f.kind == "sentiment":
        value = texts.SENTIMENT_NAMES.get(value, value)
    elif f.kind == "interest":
        value = "、".join((product_names or {}).get(code, code) for code in value)
    return texts.FINDING_LABELS[f.kind].format(value=value) + f"（“{f.evidence}”）"


def show(value: Any) -> str:
    if value is None:
        return "—"
    if value is True:
        return "是"
    if value is False:
        return "否"
    if isinstance(value, list):
        return "、".join(map(str, value)) or "—"
    return str(texts.SENTIMENT_NAMES.get(value, value)) if isinstance(value, str) else str(value)


def strip_lead(text: str) -> str:
    """'帮我记一下：协和…' -> '协和…'."""
    return _LEAD_RE.sub("", text, count=1).strip()


def product_catalog(session: Session) -> list[ProductInfo]:
    return [ProductInfo(p.code, p.name, tuple(p.keywords)) for p in session.exec(select(Product))]


def may_write_for(session: Session, user: User, owner_id: str) -> bool:
    """The owning rep, or anyone up the owner's manager chain."""
    seen: set[str] = set()
    current: str | None = owner_id
    while current and current not in seen:
        if current == user.id:
            return True
        seen.add(current)
        owner = session.get(User, current)
        current = owner.manager_id if owner else None
    return False


def resolve_customer(session: Session, text: str) -> tuple[Customer | None, str]:
    """``协和 王主任说…`` (first word names the customer) or a sentence that names one somewhere."""
    head, _, rest = text.strip().partition(" ")
    if rest.strip():
        customer = find_customer(session, head)
        if customer is not None:
            return customer, rest.strip()
    mentioned = customers_mentioned(session, text)
    return (mentioned[0] if mentioned else None), text.strip()


def record_note(engine: Engine, user_id: str, text: str, *, now: datetime | None = None,
                extractor: Callable[[str, list[ProductInfo]], Extraction] | None = None) -> NoteOutcome:
    """Store a note and apply the tags it supports; ``text`` is what follows ``/note``.

    ``extractor`` replaces the rule-based reader (the LLM one, when configured)."""
    when = now or utcnow()
    body_in = strip_lead(text)
    if not body_in:
        return NoteOutcome(False, texts.NOTE_EMPTY)
    with session_scope(engine) as session:
        user = session.get(User, user_id)
        customer, body = resolve_customer(session, body_in)
        if user is None or customer is None:
            return NoteOutcome(False, texts.NOTE_NO_CUSTOMER)
        if not may_write_for(session, user, customer.owner_id):
            owner = session.get(User, customer.owner_id)
            return NoteOutcome(False, texts.NOTE_NOT_YOURS.format(
                customer=customer.name, owner=owner.name if owner else customer.owner_id))
        found = (extractor or extract)(body, product_catalog(session))
        opportunity = _opportunity(session, customer.id, body, found)
        signal = Signal(customer_id=customer.id, opportunity_id=opportunity, rep_id=user.id,
                        text=text.strip(), tags=found.tags, findings=[f.as_dict() for f in found.findings],
                        extractor="rules" if extractor is None else "llm", created_at=when)
        session.add(signal)
        session.flush()
        if opportunity is not None:  # a note on an opportunity is activity on it
            opp = session.get(Opportunity, opportunity)
            if opp is not None and (opp.last_activity is None or opp.last_activity < when):
                opp.last_activity = when
                session.add(opp)
        changes = _changes(customer, found)
        rows = apply_tag_changes(session, customer.id, changes, f"note:{signal.id}", at=when)
        session.add(AuditLog(actor=user.id, action="note", subject=f"customer:{customer.id}",
                             detail={"signal": signal.id, "tags": found.tags}, at=when))
        outcome = NoteOutcome(True, signal_id=signal.id, customer_id=customer.id, customer_name=customer.name,
                              opportunity_id=opportunity, findings=found.findings,
                              changes=[TagChangeInfo(customer.id, r.tag, r.old_value, r.new_value,
                                                             r.source, when) for r in rows])
    outcome.notices = take_hook_notices(session)
    return outcome


def _changes(customer: Customer, found: Extraction) -> dict[str, Any]:
    changes = found.changes
    if "interested_products" in changes:
        current = customer.tags.get("interested_products")
        merged = list(current) if isinstance(current, list) else []
        merged += [c for c in changes["interested_products"] if c not in merged]
        changes["interested_products"] = merged
    return changes


def _opportunity(session: Session, customer_id: str, body: str, found: Extraction) -> str | None:
    """The opportunity the note names: its id, or the one open opportunity of the named products."""
    opps = list(session.exec(select(Opportunity).where(Opportunity.customer_id == customer_id)))
    named = _OPP_RE.search(body)
    if named:
        hit = [o for o in opps if o.id.lower() == named.group(0).lower()]
        if hit:
            return hit[0].id
    if found.products:
        hits = [o for o in opps if o.status == "open" and set(o.products) & set(found.products)]
        if len(hits) == 1:
            return hits[0].id
    return None


@dataclass
class UndoOutcome:
    ok: bool
    text: str
    reverted: list[str] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def undo_note(engine: Engine, signal_id: int, user_id: str, *, tag: str | None = None,
              now: datetime | None = None) -> UndoOutcome:
    """Revert the note's tag changes (all, or one ``tag``); the correction is kept on the signal.

    A tag changed by another source since the note keeps its value (counters lose only what the
    note added). Pressing again finds nothing left to undo.
    """
    when = now or utcnow()
    with session_scope(engine) as session:
        signal = session.get(Signal, signal_id, with_for_update=True)
        user = session.get(User, user_id)
        if signal is None or user is None:
            return UndoOutcome(False, texts.UNDO_UNKNOWN.format(id=signal_id))
        if not may_write_for(session, user, signal.rep_id):
            return UndoOutcome(False, texts.UNDO_NOT_ALLOWED)
        wanted = [t for t in signal.tags if tag is None or t == tag]
        if not wanted:
            return UndoOutcome(False, texts.UNDO_NOTHING.format(id=signal_id))
        applied = {c.tag: c for c in session.exec(select(TagChange).where(
            TagChange.source == f"note:{signal_id}", TagChange.subject_id == signal.customer_id))}
        customer = session.get(Customer, signal.customer_id)
        assert customer is not None
        later = [t for sig in session.exec(select(Signal).where(
            Signal.customer_id == signal.customer_id, Signal.id > signal_id)) for t in sig.tags]
        changes: dict[str, Any] = {}
        skipped: list[str] = []
        for name in wanted:
            change = applied.get(name)
            if change is None:
                continue
            reverted = _revert(name, change, customer.tags.get(name))
            if reverted is _KEEP or (name in later and name not in COUNTER_TAGS | LIST_TAGS):
                skipped.append(name)
            else:
                changes[name] = reverted
        apply_tag_changes(session, signal.customer_id, changes, f"note:{signal_id}:undo", at=when)
        signal.tags = {k: v for k, v in signal.tags.items() if k not in wanted}
        signal.corrected = True
        signal.corrections = [*signal.corrections, {"by": user.id, "at": when.isoformat(), "tags": wanted,
                                                    "skipped": skipped}]
        session.add(signal)
        session.add(AuditLog(actor=user.id, action="note_correct", subject=f"signal:{signal_id}",
                             detail={"tags": wanted, "skipped": skipped}, at=when))
    names = "、".join(texts.TAG_NAMES.get(t, t) for t in wanted if t not in skipped) or "—"
    text = texts.UNDO_DONE.format(id=signal_id, tags=names)
    if skipped:
        text += texts.UNDO_SKIPPED.format(tags="、".join(texts.TAG_NAMES.get(t, t) for t in skipped))
    return UndoOutcome(True, text, [t for t in wanted if t not in skipped], take_hook_notices(session))


_KEEP = object()


def _revert(tag: str, change: TagChange, current: Any) -> Any:
    if tag in COUNTER_TAGS and _number(current) and _number(change.new_value):
        added = change.new_value - (change.old_value if _number(change.old_value) else 0)
        return current - added
    if tag in LIST_TAGS and isinstance(current, list) and isinstance(change.new_value, list):
        old = change.old_value if isinstance(change.old_value, list) else []
        added = [v for v in change.new_value if v not in old]
        left = [v for v in current if v not in added]
        return left or (None if change.old_value is None else [])
    if current == change.new_value:
        return change.old_value
    return _KEEP


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
