"""Send executed actions to the external system: POST JSON with an ``Idempotency-Key`` header.

Rows are written to the ``Outbox`` table in the same transaction as the execution, so nothing is
lost when the process dies between the two; ``deliver_due()`` sends what is due, retrying a few
times with exponential backoff (tenacity) and then leaving the row for the next round with a later
``next_attempt_at``. The receiver de-duplicates on the key, so a resend after a lost answer is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from storage.db import session_scope
from storage.models import Outbox

log = logging.getLogger(__name__)
MAX_ROUNDS = 8  # after this many failed rounds the row is marked failed for an operator to look at


class RetryableError(RuntimeError):
    pass


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableError | httpx.TransportError)


@dataclass
class OutboxSender:
    url: str
    timeout: float = 5.0
    attempts: int = 3
    backoff: float = 0.2  # first wait in seconds; doubles each attempt

    def post(self, key: str, payload: dict) -> None:
        @retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=5),
            reraise=True,
        )
        def once() -> None:
            response = httpx.post(
                self.url, json=payload, timeout=self.timeout, headers={"Idempotency-Key": key}
            )
            if response.status_code == 409 or response.is_success:
                return  # 409: the receiver already has it
            if response.status_code >= 500 or response.status_code == 429:
                raise RetryableError(f"HTTP {response.status_code}")
            raise PermissionError(f"HTTP {response.status_code}: {response.text[:200]}")

        once()

    def deliver_due(self, engine: Engine, now: datetime) -> tuple[int, int]:
        """Send every queued row that is due; returns (sent, still failing)."""
        with Session(engine) as session:
            due = list(
                session.exec(
                    select(Outbox)
                    .where(Outbox.status == "queued", col(Outbox.next_attempt_at) <= now)
                    .order_by(col(Outbox.id))
                )
            )
        sent = failed = 0
        for row in due:
            try:
                self.post(row.idempotency_key, row.payload)
            except Exception as exc:
                failed += 1
                rounds = row.attempts + 1
                with session_scope(engine) as session:
                    session.execute(
                        update(Outbox)
                        .where(Outbox.id == row.id)
                        .values(
                            attempts=rounds,
                            last_error=str(exc)[:500],
                            status="failed" if rounds >= MAX_ROUNDS else "queued",
                            next_attempt_at=now + timedelta(seconds=30 * 2 ** min(rounds, 10)),
                        )
                    )
                log.warning("outbox %s not delivered (round %d): %s", row.idempotency_key, rounds, exc)
                continue
            sent += 1
            with session_scope(engine) as session:
                session.execute(
                    update(Outbox)
                    .where(Outbox.id == row.id)
                    .values(status="sent", sent_at=now, attempts=row.attempts + 1, last_error="")
                )
        return sent, failed
