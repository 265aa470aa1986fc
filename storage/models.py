"""The tables. One class per table; relations by id so every flow reads top-down."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, event, text
from sqlmodel import Field, SQLModel

from storage.types import Money, UTCDateTime, utcnow


def _json(default: Any = None, **kw: Any) -> Any:
    factory = (lambda: type(default)()) if default is not None else None
    return Field(default_factory=factory, sa_column=Column(JSON, nullable=default is None, **kw))


def _when(nullable: bool = True, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=index))
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index))


def _money(nullable: bool = True) -> Any:
    return Field(default=None if nullable else Decimal(0), sa_column=Column(Money(), nullable=nullable))


class Role(enum.StrEnum):
    rep = "rep"
    manager = "manager"
    admin = "admin"


class User(SQLModel, table=True):
    id: str = Field(primary_key=True, description="Stable login-like id, e.g. zhangsan")
    name: str
    role: Role
    region: str | None = Field(default=None, index=True)
    manager_id: str | None = Field(default=None, foreign_key="user.id", index=True)
    telegram_id: str | None = Field(default=None, unique=True)
    wecom_userid: str | None = Field(default=None, unique=True)
    active: bool = True
    extra: dict[str, Any] = _json({})


class Product(SQLModel, table=True):
    code: str = Field(primary_key=True)
    name: str
    keywords: list[str] = _json([])
    description: str = ""


class Customer(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    region: str = Field(index=True)
    owner_id: str = Field(foreign_key="user.id", index=True)
    aliases: list[str] = _json([])
    tags: dict[str, Any] = _json({})
    extra: dict[str, Any] = _json({})


class Contact(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("customer_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    name: str
    title: str
    influence: int = Field(default=3, description="1 (low) .. 5 (decides)")
    focus: list[str] = _json([])


class Opportunity(SQLModel, table=True):
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    products: list[str] = _json([])
    stage: str
    amount: Decimal = _money(nullable=False)
    stage_since: datetime | None = _when()
    last_activity: datetime | None = _when()
    status: str = Field(default="open", description="open | won | lost")


class Document(SQLModel, table=True):
    id: str = Field(primary_key=True)
    title: str
    library: str = Field(index=True)
    issuer: str | None = None
    region: str | None = None
    effective_date: date | None = None
    product_codes: list[str] = _json([])
    source: str = ""
    content_hash: str = Field(index=True)
    version: int = 1
    chunk_count: int = 0
    created_at: datetime = _when(nullable=False)
    extra: dict[str, Any] = _json({})
    updated_at: datetime = _when(nullable=False)
    embedding_model: str = ""


class Chunk(SQLModel, table=True):
    """A passage of a document, small enough for the embedding model; the unit of retrieval and citing."""

    id: str = Field(primary_key=True, description="<document id>:v<version>:<ordinal>; also the Chroma id")
    document_id: str = Field(foreign_key="document.id", index=True)
    ordinal: int
    text: str
    section: str = ""
    heading: str = Field(default="", description="enclosing heading, embedded and indexed with the text")
    page: int | None = None
    token_count: int = 0
    content_hash: str = Field(index=True, description="sha256 of the embedded text (embedding cache key)")


class TagChange(SQLModel, table=True):
    """History of every tag value, with where it came from."""

    id: int | None = Field(default=None, primary_key=True)
    subject_type: str = Field(description="customer | order | rep | region | event")
    subject_id: str = Field(index=True)
    tag: str
    old_value: Any = _json()
    new_value: Any = _json()
    source: str
    at: datetime = _when(nullable=False)


class ActionRequest(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    requester_id: str = Field(foreign_key="user.id", index=True)
    skill: str
    customer_id: str | None = Field(default=None, foreign_key="customer.id", index=True)
    params: dict[str, Any] = _json({})
    amount: Decimal | None = _money()
    status: str = Field(default="pending", index=True)
    basis: dict[str, Any] = _json({})
    reason: str = ""
    reference: str | None = Field(default=None, unique=True)
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)


class Approval(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="actionrequest.id", unique=True, description="one per request")
    approver_id: str = Field(foreign_key="user.id", index=True)
    level: int = 1
    status: str = Field(default="pending", index=True)
    decided_by: str | None = None
    decided_at: datetime | None = _when()
    reason: str = ""
    escalate_at: datetime | None = _when(index=True)
    created_at: datetime = _when(nullable=False)
    messages: dict[str, Any] = _json({})


class Grant(SQLModel, table=True):
    # one armed grant per rule, subject, recipient and capability: two requests racing to open the same
    # grant cannot both succeed (the loser retries and finds the winner's grant)
    __table_args__ = (Index("ux_grant_armed", "rule_id", "subject", "user_id", "capability", unique=True,
                            sqlite_where=text("armed"), postgresql_where=text("armed")),)
    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True)
    user_id: str = Field(foreign_key="user.id", index=True)
    customer_id: str | None = Field(default=None, foreign_key="customer.id", index=True)
    capability: str
    limit: Decimal | None = _money()
    approval_free: bool = False
    starts_at: datetime = _when(nullable=False)
    ends_at: datetime | None = _when()
    uses_left: int | None = None
    basis: dict[str, Any] = _json({})
    closed_at: datetime | None = _when()
    close_reason: str | None = None
    region: str | None = Field(default=None, index=True, description="region-wide grant (customer_id None)")
    subject: str = Field(default="", index=True, description="customer:<id> | region:<name>")
    armed: bool = Field(default=True, description="the rule's condition still held when last evaluated")


class SubjectTags(SQLModel, table=True):
    """Tags of subjects other than customers (a region's public-opinion level, an event ...)."""

    subject_type: str = Field(primary_key=True, description="region | rep | event")
    subject_id: str = Field(primary_key=True)
    tags: dict[str, Any] = _json({})


class ActionLedger(SQLModel, table=True):
    """Every executed action, once: the system of record when no webhook is configured."""

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="actionrequest.id", unique=True, description="at most one execution")
    reference: str = Field(unique=True, description="voucher / reference code, e.g. CP-20261203-7K3F9Q")
    skill: str
    customer_id: str | None = Field(default=None, foreign_key="customer.id", index=True)
    amount: Decimal | None = _money()
    params: dict[str, Any] = _json({})
    executed_by: str
    authorised_by: str
    executed_at: datetime = _when(nullable=False)


class Outbox(SQLModel, table=True):
    """Executed actions waiting to be sent to the external system (SALESBOT_ACTION_WEBHOOK_URL)."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    payload: dict[str, Any] = _json({})
    status: str = Field(default="queued", index=True, description="queued | sent | failed")
    attempts: int = 0
    next_attempt_at: datetime = _when(nullable=False, index=True)
    last_error: str = ""
    sent_at: datetime | None = _when()


class Push(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, description="e.g. doc:<id>:v<version>:<user>; one push per key")
    document_id: str | None = Field(default=None, index=True)
    document_version: int = 0
    user_id: str = Field(foreign_key="user.id", index=True)
    kind: str = "talk_track"
    body: dict[str, Any] = _json({})
    status: str = Field(default="queued", index=True)
    attempts: int = 0
    next_attempt_at: datetime = _when(nullable=False, index=True)
    sent_at: datetime | None = _when()
    feedback: str | None = None
    created_at: datetime = _when(nullable=False)
    # issue 6: the durable push queue (skills/pushqueue.py)
    claimed_by: str | None = Field(default=None, description="claim token of the worker sending it")
    claimed_at: datetime | None = _when()
    parts_sent: int = Field(default=0, description="parts of a split message already delivered")
    last_error: str = ""
    acknowledged_at: datetime | None = _when()


class AuditLog(SQLModel, table=True):
    """Append-only: the ORM refuses updates and deletes (see the mapper events below)."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(nullable=False, index=True)
    actor: str
    action: str
    subject: str = Field(index=True)
    detail: dict[str, Any] = _json({})


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(AuditLog, "before_update")
@event.listens_for(AuditLog, "before_delete")
def _refuse_audit_change(mapper: Any, connection: Any, target: AuditLog) -> None:
    raise AppendOnlyError("the audit log is append-only")


# --- signals (issue 7): rep notes, incoming events, journey breakpoints, opportunity health -------


class Signal(SQLModel, table=True):
    """A rep's note on a customer (``/note``), with the tags read from it and any correction."""

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunity.id", index=True)
    rep_id: str = Field(foreign_key="user.id", index=True)
    text: str
    tags: dict[str, Any] = _json({})  # what the extractor found: {"complaint": true, ...}
    findings: list[Any] = _json([])  # [{"kind", "tag", "value", "evidence"}], shown to the rep
    extractor: str = "rules"
    corrected: bool = False
    corrections: list[Any] = _json([])  # [{"by", "at", "tags": [...], "kept": {...}}]
    created_at: datetime = _when(nullable=False, index=True)


class TagEvent(SQLModel, table=True):
    """A CRM/ERP update over the event API (NPS, order amount, review); idempotent by event id."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)
    source: str
    customer_id: str = Field(foreign_key="customer.id", index=True)
    tags: dict[str, Any] = _json({})
    at: datetime = _when(nullable=False)
    received_at: datetime = _when(nullable=False)


class JourneyEvent(SQLModel, table=True):
    """A touchpoint (page viewed, dwell, interaction, appointment) of a customer or anonymous visitor."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)
    source: str
    subject: str = Field(index=True, description="customer id, or visitor:<id> for anonymous visitors")
    customer_id: str | None = Field(default=None, index=True)
    kind: str
    page: str = ""
    page_type: str = ""
    dwell_seconds: float | None = None
    interactions: int | None = None
    region: str | None = None
    data: dict[str, Any] = _json({})
    at: datetime = _when(nullable=False, index=True)
    received_at: datetime = _when(nullable=False)


class JourneyPending(SQLModel, table=True):
    """A trigger of a "no X within T" rule waiting for its window to pass (see evaluate_due)."""

    __table_args__ = (UniqueConstraint("rule_id", "trigger_event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    rule_id: str
    trigger_event_id: int = Field(index=True)
    subject: str
    due_at: datetime = _when(nullable=False, index=True)


class Breakpoint(SQLModel, table=True):
    """A customer-journey breakpoint: one row per (subject, rule, episode), whatever the event order."""

    __table_args__ = (UniqueConstraint("rule_id", "subject", "episode"),)
    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True)
    subject: str = Field(index=True)
    episode: str
    customer_id: str | None = Field(default=None, index=True)
    region: str = ""
    role: str = ""
    trigger_event_id: str = ""
    at: datetime = _when(nullable=False, index=True)
    detected_at: datetime = _when(nullable=False)


class OpportunityHealth(SQLModel, table=True):
    """The latest health score of an open opportunity and the one before it (for decay)."""

    opportunity_id: str = Field(primary_key=True, foreign_key="opportunity.id")
    score: int
    previous_score: int | None = None
    reasons: list[Any] = _json([])  # [{"code", "points", "text"}]
    computed_at: datetime = _when(nullable=False)
    previous_at: datetime | None = _when()
class InviteCode(SQLModel, table=True):
    """One-time code binding a chat account to an org user (`salesbot users invite`, `/bind CODE`).

    Only a hash of the code is stored; the code itself is shown once to the operator.
    """

    code_hash: str = Field(primary_key=True)
    user_id: str = Field(foreign_key="user.id", index=True)
    expires_at: datetime = _when(nullable=False)
    used_at: datetime | None = _when()
    used_by: str | None = Field(default=None, description="channel:account that used it")
    created_at: datetime = _when(nullable=False)


class ProcessedUpdate(SQLModel, table=True):
    """Incoming platform updates already handled: a retried or repeated delivery is dropped."""

    key: str = Field(primary_key=True, max_length=255,
                     description="e.g. wecom:msg:<MsgId>, telegram:upd:<id>")
    at: datetime = _when(nullable=False, index=True)


class PendingSend(SQLModel, table=True):
    """A reply whose send kept failing for the whole retry window; re-sent later, never dropped."""

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    account: str
    reply: dict[str, Any] = _json({})
    attempts: int = 0
    last_error: str = ""
    next_attempt_at: datetime = _when(nullable=False, index=True)
    created_at: datetime = _when(nullable=False)
