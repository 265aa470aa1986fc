"""Find customers the way reps name them: id, full name, alias, or a unique part of the name."""

from __future__ import annotations

from sqlmodel import Session, select

from storage.models import Customer


def find_customers(session: Session, query: str) -> list[Customer]:
    """Best matches for ``query``: exact id, name or alias first; else customers whose name or an
    alias contains it (or that it contains, for "给协和医院的..." style text). Empty when nothing fits."""
    q = query.strip()
    if not q:
        return []
    exact = session.get(Customer, q)
    if exact is not None:
        return [exact]
    customers = list(session.exec(select(Customer).order_by(Customer.id)))
    named = [c for c in customers if q == c.name or q in (c.aliases or [])]
    if named:
        return named
    return [c for c in customers if q in c.name or any(q in a for a in c.aliases or [])]


def find_customer(session: Session, query: str) -> Customer | None:
    """The one customer ``query`` names, or None when it names none or several."""
    found = find_customers(session, query)
    return found[0] if len(found) == 1 else None


def customers_mentioned(session: Session, text: str) -> list[Customer]:
    """Customers whose name or an alias appears in free text (longest names win on overlap)."""
    hits: dict[str, tuple[int, Customer]] = {}
    for c in session.exec(select(Customer).order_by(Customer.id)):
        for name in [c.name, *(c.aliases or [])]:
            if name and name in text:
                hits[c.id] = (max(len(name), hits.get(c.id, (0, c))[0]), c)
    return [c for _, c in sorted(hits.values(), key=lambda h: -h[0])]
