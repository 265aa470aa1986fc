"""``salesbot bench channels``: messages per second through the router and the Telegram channel.

200 simulated reps (by default) each send questions one after another, all at the same time, to
the fake Telegram Bot API on loopback; the real python-telegram-bot polls it and the bot answers
from a small keyword index over ``examples/knowledge`` (a stand-in for the knowledge base, so the
figure measures the channel path, not retrieval). Latency runs from the update being queued at
the fake server to the reply arriving there. One extra round runs under cProfile to split the time
between the channel library (PTB + httpx), our code, the database, the fake server and the loop.
The baseline is the same messages through ``Router.handle`` alone, with the same concurrency.

Needs the development install and a source checkout (the fake server lives in ``tests/fakes``).
"""

from __future__ import annotations

import asyncio
import cProfile
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["集采中选结果啥时候执行？", "DRG 付费分组怎么调整的？", "飞行检查重点查什么？",
             "大型医用设备配置许可怎么申请？", "支架续约的价格规则是什么？", "不良事件多久内要上报？",
             "冠脉支架集采续约什么时候开始？", "反商业贿赂有哪些禁止行为？"]
TOKEN = "800000:BENCH-token"


class KeywordKB:
    """Paragraphs of the example documents, answered by shared character bigrams (fast, no model)."""

    def __init__(self, folder: Path):
        self.paragraphs: list[tuple[str, str, set[str]]] = []
        for path in sorted(folder.glob("*")):
            if path.suffix not in (".md", ".txt"):
                continue
            for para in path.read_text(encoding="utf-8").split("\n\n"):
                para = para.strip()
                if len(para) >= 20:
                    self.paragraphs.append((path.stem, para, _bigrams(para)))

    def answer(self, question: str) -> str:
        grams = _bigrams(question)
        doc, para, _ = max(self.paragraphs, key=lambda p: len(grams & p[2]))
        return f"{para[:300]}\n\n[1] {doc}"


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


def fake_telegram_server() -> Any:
    """The test suite's fake Bot API server class (benchmarks run against it on loopback)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from tests.fakes.telegram_api import FakeTelegramServer
    except ImportError as exc:  # pragma: no cover - only without the dev install
        raise SystemExit(f"bench needs the development install and the source tree: {exc}") from exc
    return FakeTelegramServer


def _fakes() -> Any:
    FakeTelegramServer = fake_telegram_server()

    class TimedFake(FakeTelegramServer):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.replied: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
            self.reply_times: dict[int, float] = {}

        async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
            result = await super()._send_message(params)
            chat = int(params["chat_id"])
            self.reply_times[chat] = time.perf_counter()
            self.replied[chat].set()
            return result

    return TimedFake


def _setup(home: Path, reps: int, tg: Any) -> Any:
    from bot.app import build_app
    from bot.messages import Reply
    from bot.server import build_runtime
    from bot.settings import load_settings
    from storage.db import session_scope
    from storage.models import Role, User
    from storage.seed import seed_org

    settings = load_settings(home=home, telegram_token=TOKEN, telegram_base_url=tg.base_url,
                             telegram_base_file_url=tg.base_file_url, telegram_rate_limit=0, _env_file=None)
    app = build_app(settings)
    seed_org(app.engine, ROOT / "examples" / "org.yaml")
    with session_scope(app.engine) as session:
        for i in range(reps):
            session.add(User(id=f"bench{i:04d}", name=f"代表{i}", role=Role.rep, region="北京",
                             manager_id="wangjing", telegram_id=str(810000 + i)))
    kb = KeywordKB(ROOT / "examples" / "knowledge")

    async def answer(turn: Any) -> Reply:
        return Reply(kb.answer(turn.args))

    app.router.on_text(answer)
    return build_runtime(app, telegram_poll_timeout=1)


async def _round(tg: Any, reps: int, messages: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def rep(i: int) -> None:
        chat = 810000 + i
        for j in range(messages):
            event = tg.replied[chat]
            event.clear()
            sent = time.perf_counter()
            tg.push_text(chat, QUESTIONS[(i + j) % len(QUESTIONS)])
            await asyncio.wait_for(event.wait(), 60)
            latencies.append(tg.reply_times[chat] - sent)

    started = time.perf_counter()
    await asyncio.gather(*(rep(i) for i in range(reps)))
    return time.perf_counter() - started, latencies


async def _baseline(runtime: Any, reps: int, messages: int) -> float:
    from bot.messages import Incoming

    async def rep(i: int) -> None:
        for j in range(messages):
            await runtime.app.router.handle(Incoming("telegram", str(810000 + i),
                                                     text=QUESTIONS[(i + j) % len(QUESTIONS)]))

    started = time.perf_counter()
    await asyncio.gather(*(rep(i) for i in range(reps)))
    return reps * messages / (time.perf_counter() - started)


CATEGORIES = (
    ("stand-in knowledge base (bench only)", ("/bot/bench.py",)),
    ("socket I/O and polling (system calls)", ("_socket.socket", "select.", "_ssl.")),
    ("channel library (python-telegram-bot, httpx)", ("/telegram/", "/httpx/", "/httpcore/", "/h11/",
                                                       "/anyio/", "/h2/")),
    ("fake Bot API server (aiohttp)", ("/aiohttp/", "/tests/fakes/", "/multidict/", "/yarl/")),
    ("our code (bot/, storage/)", ("/bot/", "/storage/")),
    ("database (SQLAlchemy, sqlite3)", ("/sqlalchemy/", "/sqlmodel/", "sqlite3", "/pydantic")),
    ("event loop and stdlib", ("/asyncio/", "selectors", "/json/", "/logging/", "/python3.")),
)


def _shares(profile: cProfile.Profile) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        name = "other (C builtins, misc.)"
        where = f"{filename} {function}"
        for label, needles in CATEGORIES:
            if any(n in where for n in needles):
                name = label
                break
        totals[name] += tottime
    whole = sum(totals.values()) or 1.0
    return sorted(((k, v / whole) for k, v in totals.items()), key=lambda kv: -kv[1])


async def _bench(reps: int, messages: int, rounds: int, profile: bool) -> str:
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    fake_cls = _fakes()
    with tempfile.TemporaryDirectory() as tmp:
        async with fake_cls(token=TOKEN).running() as tg:
            runtime = _setup(Path(tmp), reps, tg)
            await runtime.start()
            try:
                await _round(tg, min(reps, 20), 1)  # warm-up
                rates, p50s, p95s = [], [], []
                for _ in range(rounds):
                    elapsed, lat = await _round(tg, reps, messages)
                    rates.append(len(lat) / elapsed)
                    lat.sort()
                    p50s.append(statistics.median(lat) * 1000)
                    p95s.append(lat[int(len(lat) * 0.95) - 1] * 1000)
                shares: list[tuple[str, float]] = []
                if profile:
                    prof = cProfile.Profile()
                    prof.enable()
                    await _round(tg, reps, messages)
                    prof.disable()
                    shares = _shares(prof)
                baseline = [await _baseline(runtime, reps, messages) for _ in range(rounds)]
            finally:
                await runtime.stop()
                runtime.app.engine.dispose()

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} (min {min(values):.0f}, max {max(values):.0f})"

    lines = [
        f"command: salesbot bench channels --reps {reps} --messages {messages} --rounds {rounds}",
        f"date: {date.today().isoformat()}; machine: {platform.machine()}, {platform.processor() or '?'}, "
        f"Python {platform.python_version()}, {_cpus()} CPUs",
        f"messages per round: {reps * messages} ({reps} reps x {messages}, each waits for its answer)",
        f"throughput, messages/s, median of {rounds} rounds: {spread(rates)}",
        f"reply latency p50, ms: {spread(p50s)}",
        f"reply latency p95, ms: {spread(p95s)}",
        f"baseline Router.handle alone, messages/s: {spread(baseline)}",
        f"ratio channel path / router alone: {statistics.median(rates) / statistics.median(baseline):.2f}",
    ]
    if shares:
        lines.append("time shares (cProfile, one extra round):")
        lines += [f"  {label}: {share * 100:.0f}%" for label, share in shares]
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_channel_bench(*, reps: int = 200, messages: int = 5, rounds: int = 5, profile: bool = True) -> str:
    return asyncio.run(_bench(reps, messages, rounds, profile))
