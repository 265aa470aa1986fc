"""Executed actions reach the external system through the outbox: a real local HTTP server, retries
with backoff, the same Idempotency-Key on every attempt, nothing lost while the receiver is down."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from skills.outbox import OutboxSender
from storage.models import Outbox
from storage.types import utcnow
from tests.perm_helpers import seeded, service


class ActionReceiver:
    """A small external system: answers with the queued status codes, then 200; records every call."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.calls: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.calls.append((self.headers.get("Idempotency-Key", ""), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/actions"

    def __enter__(self) -> ActionReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[ActionReceiver]:
    with ActionReceiver() as r:
        yield r


def test_delivery_retries_with_backoff_and_one_idempotency_key(
    engine: Engine, receiver: ActionReceiver
) -> None:
    seeded(engine)
    receiver.statuses = [503, 500]
    svc = service(engine, sender=OutboxSender(receiver.url, backoff=0.01))
    result = svc.request("zhangsan", "compensation", "北医三院", {"amount": "300", "reason": "交付延迟"})
    assert result.status == "executed"
    assert svc.deliver_outbox() == (1, 0)
    keys = {k for k, _ in receiver.calls}
    assert len(receiver.calls) == 3 and keys == {f"action-{result.reference}"}
    body = receiver.calls[-1][1]
    assert (
        body["reference"] == result.reference and body["amount"] == "300" and body["customer_id"] == "bj-pku3"
    )
    with Session(engine) as s:
        row = s.exec(select(Outbox)).one()
        assert row.status == "sent" and row.attempts == 1
    assert svc.deliver_outbox() == (0, 0)  # nothing sent twice


def test_receiver_down_keeps_the_row_for_a_later_round(engine: Engine, receiver: ActionReceiver) -> None:
    seeded(engine)
    receiver.statuses = [503] * 3
    svc = service(engine, sender=OutboxSender(receiver.url, backoff=0.01))
    result = svc.request("zhangsan", "compensation", "北医三院", {"amount": "200"})
    assert svc.deliver_outbox() == (0, 1)
    with Session(engine) as s:
        row = s.exec(select(Outbox)).one()
        assert row.status == "queued" and row.attempts == 1 and "503" in row.last_error
    assert svc.deliver_outbox() == (0, 0)  # not due yet
    assert svc.deliver_outbox(utcnow() + timedelta(minutes=5)) == (1, 0)
    assert {k for k, _ in receiver.calls} == {f"action-{result.reference}"}


def test_without_a_webhook_the_ledger_is_the_system_of_record(engine: Engine) -> None:
    seeded(engine)
    svc = service(engine)
    assert svc.request("zhangsan", "compensation", "北医三院", {"amount": "200"}).status == "executed"
    assert svc.deliver_outbox() == (0, 0)
    with Session(engine) as s:
        assert s.exec(select(Outbox)).one().status == "ledger_only"


def test_client_errors_are_not_retried(sqlite_engine: Engine, receiver: ActionReceiver) -> None:
    seeded(sqlite_engine)
    receiver.statuses = [400]
    svc = service(sqlite_engine, sender=OutboxSender(receiver.url, backoff=0.01))
    svc.request("zhangsan", "compensation", "北医三院", {"amount": "200"})
    assert svc.deliver_outbox() == (0, 1)
    assert len(receiver.calls) == 1
