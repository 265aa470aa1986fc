"""The one function that changes a customer's tags, and the hooks run after such changes commit.

Every tag change anywhere (a rep's note, a CRM event, a correction) goes through
``apply_tag_changes``: it writes the new tags and one ``TagChange`` row per changed tag, with its
source (``note:12``, ``event:crm:abc``, ``note:12:undo``). When the surrounding transaction
commits, every hook registered with ``tag_hooks.register`` is called once with the committed
changes; a rollback drops them. Hooks that must write in the same transaction (the permission
engine re-running its rules and opening or closing grants atomically with the tag change) register
with ``tag_hooks.register_in_transaction`` and get ``(session, changes)`` right after the flush; if
one raises, the whole change rolls back. Notices either kind returns are collected on the session,
kept only if the transaction commits, and read with ``take_hook_notices(session)`` (the note flow
shows them to the rep; the event API hands them to delivery).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from skills.notices import Notice
from storage.models import Customer, TagChange
from storage.types import utcnow

log = logging.getLogger(__name__)

_PENDING = "signals.tag_changes.pending"
_PENDING_NOTICES = "signals.tag_changes.pending_notices"
_NOTICES = "signals.tag_changes.notices"
_LISTENING = "signals.tag_changes.listening"


@dataclass(frozen=True)
class Inc:
    """Add ``by`` to a numeric tag (missing counts as 0), resolved under the customer's row lock."""

    by: int | float = 1


@dataclass(frozen=True)
class TagChangeInfo:
    """A committed tag change, as plain data for hooks (no ORM state)."""

    customer_id: str
    tag: str
    old_value: Any
    new_value: Any
    source: str
    at: datetime


TagHook = Callable[[list[TagChangeInfo]], Iterable[Notice] | None]
TxTagHook = Callable[[Session, list[TagChangeInfo]], Iterable[Notice] | None]


class HookList:
    """Callbacks run on tag changes, in registration order: after commit, or inside the transaction.

    An in-transaction hook may be bound to one database (``bind``, an Engine): it then runs only for
    sessions on that database, and registering again under the same ``key`` replaces it. That is how
    each app's permission engine re-runs its own rules without leaking into another app's database.
    """

    def __init__(self) -> None:
        self._hooks: list[TagHook] = []
        self._tx_hooks: list[tuple[TxTagHook, weakref.ref[Engine] | None, str | None]] = []

    def register_in_transaction(self, hook: TxTagHook, *, bind: Engine | None = None,
                                key: str | None = None) -> TxTagHook:
        self._tx_hooks = [
            (h, b, k) for h, b, k in self._tx_hooks
            if h is not hook and not (key is not None and k == key and b is not None and b() is bind)
        ]
        self._tx_hooks.append((hook, weakref.ref(bind) if bind is not None else None, key))
        return hook

    def unregister_in_transaction(self, hook: TxTagHook) -> None:
        self._tx_hooks = [entry for entry in self._tx_hooks if entry[0] is not hook]

    def run_in_transaction(self, session: Session, changes: list[TagChangeInfo]) -> list[Notice]:
        """Exceptions propagate: the caller's transaction rolls back with the tag change."""
        notices: list[Notice] = []
        current = session.get_bind()
        for hook, bind, _ in list(self._tx_hooks):
            if bind is None or bind() is current:
                notices.extend(hook(session, changes) or ())
        return notices

    def register(self, hook: TagHook) -> TagHook:
        if hook not in self._hooks:
            self._hooks.append(hook)
        return hook

    def unregister(self, hook: TagHook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)

    @contextmanager
    def registered(self, hook: TagHook) -> Iterator[TagHook]:
        self.register(hook)
        try:
            yield hook
        finally:
            self.unregister(hook)

    def run(self, changes: list[TagChangeInfo]) -> list[Notice]:
        notices: list[Notice] = []
        for hook in list(self._hooks):
            try:
                notices.extend(hook(changes) or ())
            except Exception:  # a failing hook must not undo or hide the committed change
                log.exception("tag hook %r failed", hook)
        return notices


tag_hooks = HookList()


def apply_tag_changes(session: Session, customer_id: str, changes: Mapping[str, Any], source: str,
                      *, at: datetime | None = None) -> list[TagChange]:
    """Set tags on a customer (``None`` removes a tag, ``Inc(n)`` adds to a number).

    Records one TagChange per tag whose value really changes; unchanged tags write nothing.
    Raises LookupError for an unknown customer.
    """
    customer = session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise LookupError(f"unknown customer {customer_id!r}")
    when = at or utcnow()
    tags = dict(customer.tags)
    rows: list[TagChange] = []
    for tag, value in changes.items():
        old = tags.get(tag)
        new = _resolve(old, value)
        if new == old and (new is None) == (tag not in tags):
            continue
        if new is None:
            tags.pop(tag, None)
        else:
            tags[tag] = new
        rows.append(TagChange(subject_type="customer", subject_id=customer_id, tag=tag,
                              old_value=old, new_value=new, source=source, at=when))
    if not rows:
        return []
    customer.tags = tags  # a new dict, so the JSON column is seen as changed
    session.add(customer)
    session.add_all(rows)
    session.flush()
    infos = [TagChangeInfo(customer_id, r.tag, r.old_value, r.new_value, source, when) for r in rows]
    _stash(session, infos, tag_hooks.run_in_transaction(session, infos))
    return rows


def take_hook_notices(session: Session) -> list[Notice]:
    """Notices the tag hooks returned after this session's commits (emptied by the call)."""
    return session.info.pop(_NOTICES, [])


def _resolve(old: Any, value: Any) -> Any:
    if isinstance(value, Inc):
        base = old if isinstance(old, int | float) and not isinstance(old, bool) else 0
        return base + value.by
    return value


def _stash(session: Session, infos: list[TagChangeInfo], notices: list[Notice]) -> None:
    session.info.setdefault(_PENDING, []).extend(infos)
    session.info.setdefault(_PENDING_NOTICES, []).extend(notices)
    if not session.info.get(_LISTENING):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_LISTENING] = True


def _after_commit(session: Session) -> None:
    changes = session.info.pop(_PENDING, [])
    notices = session.info.pop(_PENDING_NOTICES, [])
    if changes:
        notices = notices + tag_hooks.run(changes)
    if notices:
        session.info.setdefault(_NOTICES, []).extend(notices)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_PENDING_NOTICES, None)
