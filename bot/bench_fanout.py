"""``salesbot bench fanout``: one policy to N reps through the fake Telegram Bot API at its limits.

Set-up (a temporary SQLite home): the example org plus N reps in 江苏, each owning one hospital
with an open GK-TR01 opportunity and bound to a Telegram chat; the fake Bot API (``tests/fakes``)
answers 429 to anything over 30 messages/s overall or 1/s per chat. The 江苏 DRG notice is stored
as a document (passages chunked, not embedded: the embedding model is not what is measured), then
the clock starts: impact analysis, N talk tracks queued, the ``serve`` runtime's push worker sends
them with the Telegram limiter at ``--rate`` messages/s.

Reported: time from ingest finished to the first push sent; delivered per second between the first
and the last send, as a share of the 30/s limit; lost (a rep without their message) and doubled
(a rep with two). Needs the development install and a source checkout (the fake lives in tests/).
"""

from __future__ import annotations

import asyncio
import logging
import platform
import statistics
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from bot.bench import ROOT, fake_telegram_server

TOKEN = "800001:FANOUT-token"
FIRST_CHAT = 900000
LIMIT = 30.0


def _fake() -> Any:
    FakeTelegramServer = fake_telegram_server()

    class Recording(FakeTelegramServer):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.delivered: list[tuple[float, int]] = []

        async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
            result = await super()._send_message(params)
            self.delivered.append((time.perf_counter(), int(params["chat_id"])))
            return result

    return Recording


def _org(engine: Any, reps: int) -> None:
    from decimal import Decimal

    from storage.db import session_scope
    from storage.models import Customer, Opportunity, Role, User
    from storage.seed import seed_org

    seed_org(engine, ROOT / "examples" / "org.yaml")
    with session_scope(engine) as session:
        for i in range(reps):
            rep = f"fan{i:05d}"
            session.add(
                User(
                    id=rep,
                    name=f"代表{i}",
                    role=Role.rep,
                    region="江苏",
                    manager_id="lihua",
                    telegram_id=str(FIRST_CHAT + i),
                )
            )
        session.flush()
        for i in range(reps):
            session.add(
                Customer(id=f"fan-h{i:05d}", name=f"江苏第{i}医院", region="江苏", owner_id=f"fan{i:05d}")
            )
        session.flush()
        for i in range(reps):
            session.add(
                Opportunity(
                    id=f"fan-o{i:05d}",
                    customer_id=f"fan-h{i:05d}",
                    products=["GK-TR01"],
                    stage="方案评估",
                    amount=Decimal(500000),
                )
            )


def _store_document(engine: Any) -> str:
    """The DRG notice as a document with its passages (what ingest writes), without the model."""
    from knowledge.chunking import Chunker
    from knowledge.embeddings import text_hash
    from knowledge.loaders import load_document
    from storage.db import session_scope
    from storage.models import Chunk, Document

    path = ROOT / "examples" / "knowledge" / "js-drg-2026.md"
    loaded = load_document(path.name, path.read_bytes())
    passages = Chunker(len, max_tokens=250).split(loaded)
    with session_scope(engine) as session:
        session.add(
            Document(
                id="js-drg-2026",
                title=loaded.title,
                library="policy",
                region="江苏",
                issuer="江苏省医疗保障局",
                content_hash=text_hash(loaded.text),
                chunk_count=len(passages),
                effective_date=date(2026, 7, 1),
            )
        )
        session.flush()
        for n, p in enumerate(passages):
            session.add(
                Chunk(
                    id=f"js-drg-2026:v1:{n}",
                    document_id="js-drg-2026",
                    ordinal=n,
                    text=p.text,
                    section=p.section,
                    heading=p.heading,
                    content_hash=text_hash(p.text),
                )
            )
    return "js-drg-2026"


async def _round(reps: int, rate: float, batch: int) -> dict[str, float]:
    from bot.app import build_app
    from bot.pushes import impact_config, trigger_document
    from bot.server import build_runtime
    from bot.settings import load_settings
    from storage.models import Push

    with tempfile.TemporaryDirectory() as tmp:
        async with _fake()(token=TOKEN).running() as tg:
            tg.enforce_rate_limits(global_per_s=LIMIT, per_chat_per_s=1)
            settings = load_settings(
                home=Path(tmp),
                telegram_token=TOKEN,
                telegram_base_url=tg.base_url,
                telegram_base_file_url=tg.base_file_url,
                telegram_rate_limit=rate,
                push_batch=batch,
                push_idle_seconds=0.05,
                push_manager_digest=False,
                _env_file=None,
            )
            app = build_app(settings)
            _org(app.engine, reps)
            runtime = build_runtime(app, telegram_poll_timeout=1)
            await runtime.start()
            try:
                doc = _store_document(app.engine)
                from knowledge import lexicon

                lexicon.terms("预热分词")  # ingest has loaded jieba by the time it finishes
                t0 = time.perf_counter()  # ingest finished
                report = await asyncio.to_thread(
                    trigger_document, app.engine, doc, impact_config(settings), digest=False
                )
                queued = time.perf_counter()
                runtime.pushes.wake()
                expected = sum(1 for i in report.items if i.user_id.startswith("fan"))  # the bench reps
                deadline = time.perf_counter() + reps / rate * 3 + 60
                while len(tg.delivered) < expected and time.perf_counter() < deadline:
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # anything doubled would show up now
            finally:
                await runtime.stop()
            from sqlmodel import Session, func, select

            with Session(app.engine) as session:
                sent_rows = session.exec(
                    select(func.count()).select_from(Push).where(Push.status == "sent")
                ).one()
            app.engine.dispose()
            per_chat = Counter(chat for _, chat in tg.delivered)
            times = [t for t, _ in tg.delivered]
            span = max(times) - min(times) if len(times) > 1 else float("nan")
            wanted = {FIRST_CHAT + i for i in range(reps)}
            del report
            return {
                "reps": reps,
                "queued": expected,
                "delivered": len(times),
                "lost": len(wanted - set(per_chat)),
                "doubled": sum(n - 1 for n in per_chat.values() if n > 1),
                "sent_rows": sent_rows,
                "impact_s": queued - t0,
                "first_push_s": min(times) - t0 if times else float("nan"),
                "rate": (len(times) - 1) / span if span == span and span > 0 else float("nan"),
                "total_s": max(times) - t0 if times else float("nan"),
                "rate_limit_429": tg.rate_limit_violations,
            }


def run_fanout_bench(*, reps: int = 10000, rounds: int = 1, rate: float = LIMIT, batch: int = 60) -> str:
    logging.getLogger().setLevel(logging.ERROR)
    results = [asyncio.run(_round(reps, rate, batch)) for _ in range(rounds)]

    def spread(key: str, fmt: str = "{:.2f}") -> str:
        values = [r[key] for r in results]
        if len(values) == 1:
            return fmt.format(values[0])
        return (
            f"{fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, "
            f"max {fmt.format(max(values))})"
        )

    rate_median = statistics.median(r["rate"] for r in results)
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return "\n".join(
        [
            f"command: salesbot bench fanout --reps {reps} --rounds {rounds} --rate {rate:g} --batch {batch}",
            f"date: {date.today().isoformat()}; machine: {platform.machine()}, "
            f"Python {platform.python_version()}, {cpus} CPUs; SQLite; "
            f"fake Bot API enforcing {LIMIT:g}/s overall and 1/s per chat",
            f"pushes queued per round: {spread('queued', '{:.0f}')}; "
            f"delivered: {spread('delivered', '{:.0f}')}; "
            f"lost: {sum(r['lost'] for r in results)}; doubled: {sum(r['doubled'] for r in results)}; "
            f"rows marked sent: {spread('sent_rows', '{:.0f}')}",
            f"impact analysis + talk tracks + queue, s: {spread('impact_s')}",
            f"ingest finished -> first push sent, s: {spread('first_push_s')}",
            f"delivered per second (first to last send): {spread('rate')}",
            f"baseline: the platform limit {LIMIT:g}/s; "
            f"ratio delivered / limit: {rate_median / LIMIT * 100:.1f}%",
            f"ingest finished -> last push sent, s: {spread('total_s', '{:.1f}')}",
            f"429 answers from the fake (retried): {spread('rate_limit_429', '{:.0f}')}",
        ]
    )
