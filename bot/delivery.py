"""Getting replies to the right person on the right channel, whole and in order.

- Routing: a reply without ``to`` goes back where the message came from; ``Reply.to`` names an
  org user, reached on the sender's channel when they have an account there, else on the first
  running channel they are bound to (WeCom before Telegram).
- A button press's first reply to the presser replaces the card (``Reply.replace_card``).
- Long texts are split on paragraph, line, then sentence boundaries to each channel's limit;
  buttons ride on the last part.
- Rate limits: a leaky bucket per channel (aiolimiter) keeps us under the platform's rate; a
  ``RateLimited`` answer is waited out (Telegram's ``retry_after``) and other transient errors
  are retried with exponential backoff and jitter (tenacity) for up to ``retry_window`` seconds.
  Only a permanent error (user blocked the bot, unknown user) ends a send early. A send still
  failing when the window closes is parked in the ``pendingsend`` table and re-tried by a server
  job with growing intervals (up to an hour), surviving restarts: failures are logged, counted and
  retried, never silently dropped.
"""

from __future__ import annotations

import base64
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay

from bot.channels.base import Channel, SendError
from bot.identity import Directory
from bot.messages import Attachment, Button, Incoming, Reply
from bot.metrics import Metrics
from storage.db import session_scope
from storage.models import PendingSend
from storage.types import utcnow

log = logging.getLogger(__name__)

CHANNEL_PREFERENCE = ("wecom", "telegram")
_SEPARATORS = (
    re.compile(r"(?<=\n\n)"),
    re.compile(r"(?<=\n)"),
    re.compile(r"(?<=[。！？；!?;])|(?<=\.\s)"),
    re.compile(r"(?<=[，、,：:])|(?<=\s)"),
)


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` (as ``measure`` counts), preferring paragraph,
    then line, then sentence, then clause boundaries; a part never ends mid-character."""
    if measure(text) <= limit:
        return [text]
    return [p for p in (part.strip() for part in _split(text, limit, measure, 0)) if p]


def _split(text: str, limit: int, measure: Callable[[str], int], level: int) -> list[str]:
    if measure(text) <= limit:
        return [text]
    if level >= len(_SEPARATORS):
        return _hard_split(text, limit, measure)
    pieces = [p for p in _SEPARATORS[level].split(text) if p]
    parts: list[str] = []
    current = ""
    for piece in pieces:
        if measure(piece) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.extend(_split(piece, limit, measure, level + 1))
        elif measure(current + piece) <= limit:
            current += piece
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _hard_split(text: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    parts, current = [], ""
    for char in text:
        if current and measure(current + char) > limit:
            parts.append(current)
            current = ""
        current += char
    return [*parts, current] if current else parts


def split_reply(reply: Reply, limit: int, measure: Callable[[str], int] = len) -> list[Reply]:
    texts = split_text(reply.text, limit, measure)
    if len(texts) == 1:
        return [reply]
    last = len(texts) - 1
    return [replace(reply, text=t, buttons=reply.buttons if i == last else (),
                    files=reply.files if i == last else ()) for i, t in enumerate(texts)]


def reply_to_json(reply: Reply) -> dict[str, Any]:
    return {"text": reply.text, "markdown": reply.markdown,
            "buttons": [[[b.text, b.payload] for b in row] for row in reply.buttons],
            "files": [[f.name, base64.b64encode(f.content).decode(), f.mime_type] for f in reply.files]}


def reply_from_json(data: dict[str, Any]) -> Reply:
    return Reply(data["text"], markdown=data.get("markdown", False),
                 buttons=tuple(tuple(Button(t, p) for t, p in row) for row in data.get("buttons", [])),
                 files=tuple(Attachment(n, base64.b64decode(c), m) for n, c, m in data.get("files", [])))


class Delivery:
    def __init__(self, directory: Directory, metrics: Metrics, *, retry_window: float = 600.0,
                 max_backoff: float = 30.0, engine: Engine | None = None):
        self.engine = engine  # where sends that outlived the retry window wait (PendingSend)
        self.directory = directory
        self.metrics = metrics
        self.retry_window = retry_window
        self.max_backoff = max_backoff
        self.channels: dict[str, Channel] = {}
        self._limiters: dict[str, AsyncLimiter] = {}

    def add(self, channel: Channel, rate_per_second: float | None = None) -> None:
        self.channels[channel.name] = channel
        if rate_per_second:
            # capacity 1 per 1/rate seconds: smooth, no burst above the rate
            self._limiters[channel.name] = AsyncLimiter(1, 1.0 / rate_per_second)

    # routing ----------------------------------------------------------------------------
    def address(self, user_id: str, prefer: str | None = None) -> tuple[str, str] | None:
        """(channel, account) where ``user_id`` can be reached, or None."""
        user = self.directory.get(user_id)
        if user is None or not user.active:
            return None
        accounts = {"telegram": user.telegram_id, "wecom": user.wecom_userid}
        order = ([prefer] if prefer else []) + [c for c in CHANNEL_PREFERENCE if c != prefer]
        for name in order:
            if name in self.channels and accounts.get(name):
                return name, str(accounts[name])
        return None

    async def deliver(self, msg: Incoming, replies: Iterable[Reply]) -> None:
        """Send the router's replies to a message: to the sender, or to the users they name."""
        replies = list(replies)
        sender_id = None
        if any(r.to is not None for r in replies):
            sender = self.directory.resolve(msg.channel, msg.account)
            sender_id = sender.id if sender else None
        card_replaced = False
        for reply in replies:
            if reply.to is None or reply.to == sender_id:
                if msg.button is not None and reply.replace_card and not card_replaced:
                    card_replaced = True
                    if await self._edit(msg, reply):
                        continue
                await self.send(msg.channel, msg.account, reply)
            else:
                await self.push(reply.to, reply, prefer=msg.channel)

    async def push(self, user_id: str, reply: Reply, prefer: str | None = None) -> bool:
        """Send to an org user wherever they are bound (approval cards, talk tracks, alerts)."""
        target = self.address(user_id, prefer)
        if target is None:
            log.warning("no channel reaches user", extra={"user": user_id})
            self.metrics.send_failures.labels(prefer or "none", "unreachable").inc()
            return False
        return await self.send(*target, replace(reply, to=None))

    async def send(self, channel_name: str, account: str, reply: Reply) -> bool:
        channel = self.channels.get(channel_name)
        if channel is None:
            log.warning("reply for a channel that is not running", extra={"channel": channel_name})
            return False
        ok = True
        for part in split_reply(reply, channel.max_text, channel.measure):
            error = await self._attempt(channel, lambda part=part: channel.send(account, part))
            if error is not None:
                ok = False
                if error.retry:
                    self._park(channel.name, account, part, error)
        return ok

    async def send_once(self, channel_name: str, account: str, part: Reply) -> SendError | None:
        """Send one part (already split) with pacing and retries but without parking it: for callers
        that keep their own durable queue (the push queue). None on success, else the last error."""
        channel = self.channels.get(channel_name)
        if channel is None:
            return SendError(f"channel {channel_name} not running")
        return await self._attempt(channel, lambda: channel.send(account, part))

    async def _edit(self, pressed: Incoming, reply: Reply) -> bool:
        channel = self.channels.get(pressed.channel)
        if channel is None:
            return False
        first, *rest = split_reply(reply, channel.max_text, channel.measure)
        done: list[bool] = []

        async def op() -> None:
            done.append(await channel.edit(pressed, first))

        if await self._attempt(channel, op) is not None or not done or not done[-1]:
            return False
        follow = channel.after_edit(reply)
        if follow is not None:
            await self.send(pressed.channel, pressed.account, follow)
            return True
        if rest:
            remainder = replace(reply, text="\n".join(p.text for p in rest))
            await self.send(pressed.channel, pressed.account, remainder)
        return True

    # sends that outlived the retry window -----------------------------------------------------
    def _park(self, channel: str, account: str, reply: Reply, error: SendError) -> None:
        if self.engine is None:
            return
        with session_scope(self.engine) as session:
            session.add(PendingSend(channel=channel, account=account, reply=reply_to_json(reply),
                                    last_error=str(error)[:200],
                                    next_attempt_at=utcnow() + timedelta(seconds=self.max_backoff)))
        log.warning("send parked for later", extra={"channel": channel})

    async def retry_parked(self, now: datetime | None = None, limit: int = 100) -> int:
        """Try the parked sends that are due once more; returns how many went out."""
        if self.engine is None:
            return 0
        now = now or utcnow()
        with Session(self.engine) as session:
            due = session.exec(select(PendingSend).where(PendingSend.next_attempt_at <= now)
                               .order_by(PendingSend.id).limit(limit)).all()  # type: ignore[arg-type]
        sent = 0
        for row in due:
            channel = self.channels.get(row.channel)
            error: SendError | None = SendError(f"channel {row.channel} not running")
            if channel is not None:
                part = reply_from_json(row.reply)
                error = await self._attempt(channel, lambda c=channel, p=part, a=row.account: c.send(a, p),
                                            window=0)
            with session_scope(self.engine) as session:
                current = session.get(PendingSend, row.id)
                if current is None:
                    continue
                if error is None or not error.retry:
                    session.delete(current)
                    sent += error is None
                else:
                    current.attempts += 1
                    current.last_error = str(error)[:200]
                    current.next_attempt_at = now + timedelta(
                        seconds=min(3600, self.max_backoff * 2 ** current.attempts))
                    session.add(current)
        return sent

    # retries ----------------------------------------------------------------------------------
    async def _attempt(self, channel: Channel, op: Callable[[], Awaitable[None]],
                       window: float | None = None) -> SendError | None:
        """Run one send with pacing and retries; None on success, else the last error."""
        limiter = self._limiters.get(channel.name)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, SendError) and e.retry),
                wait=self._wait, stop=stop_after_delay(self.retry_window if window is None else window),
                reraise=True,
                before_sleep=lambda state: self._failed(channel, state),
            ):
                with attempt:
                    if limiter is not None:
                        async with limiter:
                            await op()
                    else:
                        await op()
        except SendError as exc:
            self.metrics.send_failures.labels(channel.name, type(exc).__name__).inc()
            self.metrics.send_dropped.labels(channel.name).inc()
            log.error("send given up", extra={"channel": channel.name, "error": str(exc)[:200]})
            return exc
        self.metrics.messages_out.labels(channel.name).inc()
        return None

    def _failed(self, channel: Channel, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = type(exc).__name__ if exc else "unknown"
        self.metrics.send_failures.labels(channel.name, reason).inc()
        log.warning("send failed, will retry", extra={"channel": channel.name, "reason": reason,
                                                      "attempt": state.attempt_number})

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SendError) and exc.retry_after is not None:
            return exc.retry_after + random.uniform(0, 0.25)
        backoff = min(self.max_backoff, 0.5 * 2 ** (state.attempt_number - 1))
        return backoff * random.uniform(0.5, 1.0)
