"""Remembering which platform updates were handled, so a retried delivery is handled once.

Keys go into the ``processedupdate`` table (shared by every process on the same database, kept
across restarts) behind a small in-memory cache; rows older than ``keep`` are pruned.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.models import ProcessedUpdate
from storage.types import utcnow


class Dedupe:
    def __init__(self, engine: Engine, *, memory: int = 20_000, keep: timedelta = timedelta(days=3)):
        self.engine = engine
        self.memory = memory
        self.keep = keep
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._inserts = 0

    def known(self, key: str) -> bool:
        """Seen recently by this process (no database round trip)."""
        return key[:255] in self._recent

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is seen (and records it), False for every repeat."""
        key = key[:255]
        if key in self._recent:
            return False
        try:
            with Session(self.engine) as session:
                session.add(ProcessedUpdate(key=key))
                session.commit()
        except IntegrityError:
            self._remember(key)
            return False
        self._remember(key)
        self._inserts += 1
        if self._inserts % 1000 == 0:
            self.prune()
        return True

    def _remember(self, key: str) -> None:
        self._recent[key] = None
        while len(self._recent) > self.memory:
            self._recent.popitem(last=False)

    def prune(self, now: datetime | None = None) -> int:
        cutoff = (now or utcnow()) - self.keep
        with Session(self.engine) as session:
            result = session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.at < cutoff))  # type: ignore[arg-type]
            session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
