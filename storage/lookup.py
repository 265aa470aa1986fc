"""Find customers the way reps name them: id, full name, alias, or a unique part of the name."""

from __future__ import annotations

from sqlmodel import Session, select

from storage.models import Customer, User


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


def reports_to(users: dict[str, User], user_id: str, manager_id: str) -> bool:
    """Whether ``manager_id`` is somewhere above ``user_id`` in the reporting chain (cycle-safe)."""
    seen: set[str] = set()
    current = users.get(user_id)
    while current is not None and current.manager_id and current.id not in seen:
        seen.add(current.id)
        if current.manager_id == manager_id:
            return True
        current = users.get(current.manager_id)
    return False
