"""Import an org file into the database: one transaction, upsert by id, never duplicates."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from storage.db import session_scope
from storage.models import AuditLog, Contact, Customer, Opportunity, Product, TagChange, User
from storage.orgfile import OrgFile, UserIn, load_org


@dataclass
class SeedReport:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    tag_changes: int = 0

    def summary(self) -> str:
        kinds = ("user", "product", "customer", "contact", "opportunity")
        parts = [f"{k}: +{self.created[k]} ~{self.updated[k]}" for k in kinds]
        return "; ".join(parts) + f"; tag changes: {self.tag_changes}"


def seed_org(engine: Engine, path: Path) -> SeedReport:
    """Validate the whole file first (FileInvalid on any problem), then write it in one transaction."""
    org = load_org(path)
    with session_scope(engine) as session:
        report = apply_org(session, org, source=f"org:{path.name}")
        session.add(AuditLog(actor="operator", action="seed", subject=str(path), detail=report.__dict__))
    return report


def apply_org(session: Session, org: OrgFile, *, source: str) -> SeedReport:
    report = SeedReport()

    def upsert(model: type[SQLModel], key: Any, values: dict[str, Any]) -> Any:
        row = session.get(model, key)
        kind = model.__name__.lower()
        if row is None:
            row = model(**values)
            session.add(row)
            report.created[kind] += 1
        else:
            changed = False
            for name, value in values.items():
                if getattr(row, name) != value:
                    setattr(row, name, value)
                    changed = True
            report.updated[kind] += changed
        return row

    for u in _managers_first(org.users):
        upsert(User, u.id, {
            "id": u.id, "name": u.name, "role": u.role, "region": u.region, "manager_id": u.manager,
            "telegram_id": u.telegram_id, "wecom_userid": u.wecom_userid, "extra": u.extra,
        })
        session.flush()
    for p in org.products:
        upsert(Product, p.code, p.model_dump())
    session.flush()

    for c in org.customers:
        existing = session.get(Customer, c.id)
        old_tags = dict(existing.tags) if existing else {}
        upsert(Customer, c.id, {
            "id": c.id, "name": c.name, "region": c.region, "owner_id": c.owner,
            "aliases": c.aliases, "tags": c.tags, "extra": c.extra,
        })
        session.flush()
        for tag in sorted(set(old_tags) | set(c.tags)):
            if old_tags.get(tag) != c.tags.get(tag):
                session.add(TagChange(subject_type="customer", subject_id=c.id, tag=tag,
                                      old_value=old_tags.get(tag), new_value=c.tags.get(tag), source=source))
                report.tag_changes += 1
        _sync_contacts(session, c.id, [ct.model_dump() for ct in c.contacts], report)

    for o in org.opportunities:
        upsert(Opportunity, o.id, {
            "id": o.id, "customer_id": o.customer, "products": o.products, "stage": o.stage,
            "amount": o.amount, "stage_since": _as_utc(o.stage_since),
            "last_activity": _as_utc(o.last_activity), "status": o.status,
        })
    session.flush()
    return report


def _sync_contacts(
    session: Session, customer_id: str, wanted: list[dict[str, Any]], report: SeedReport
) -> None:
    current = {c.name: c for c in session.exec(select(Contact).where(Contact.customer_id == customer_id))}
    for values in wanted:
        row = current.pop(values["name"], None)
        if row is None:
            session.add(Contact(customer_id=customer_id, **values))
            report.created["contact"] += 1
            continue
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        for k in changed:
            setattr(row, k, values[k])
        report.updated["contact"] += bool(changed)
    for gone in current.values():
        session.delete(gone)


def _managers_first(users: list[UserIn]) -> list[UserIn]:
    """Order users so that each one's manager is written before them (foreign key)."""
    by_id = {u.id: u for u in users}
    ordered: list[UserIn] = []
    placed: set[str] = set()

    def place(u: UserIn) -> None:
        if u.id in placed:
            return
        if u.manager and u.manager in by_id:
            place(by_id[u.manager])
        placed.add(u.id)
        ordered.append(u)

    for u in users:
        place(u)
    return ordered


def _as_utc(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), tzinfo=UTC)
