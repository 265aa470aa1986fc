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
  Only a permanent error (user blocked the bot, unknown user) ends a send early; either way the
  failure is logged and counted, never silently dropped.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay

from bot.channels.base import Channel, SendError
from bot.identity import Directory
from bot.messages import Incoming, Reply
from bot.metrics import Metrics

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


class Delivery:
    def __init__(self, directory: Directory, metrics: Metrics, *, retry_window: float = 600.0,
                 max_backoff: float = 30.0):
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
            ok = await self._attempt(channel, lambda part=part: channel.send(account, part)) and ok
        return ok

    async def _edit(self, pressed: Incoming, reply: Reply) -> bool:
        channel = self.channels.get(pressed.channel)
        if channel is None:
            return False
        first, *rest = split_reply(reply, channel.max_text, channel.measure)
        done: list[bool] = []

        async def op() -> None:
            done.append(await channel.edit(pressed, first))

        if not await self._attempt(channel, op) or not done or not done[-1]:
            return False
        follow = channel.after_edit(reply)
        if follow is not None:
            await self.send(pressed.channel, pressed.account, follow)
            return True
        for part in rest:
            await self._attempt(channel, lambda part=part: channel.send(pressed.account, part))
        return True

    # retries ------------------------------------------------------------------------------
    async def _attempt(self, channel: Channel, op: Callable[[], Awaitable[None]]) -> bool:
        limiter = self._limiters.get(channel.name)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, SendError) and e.retry),
                wait=self._wait, stop=stop_after_delay(self.retry_window), reraise=True,
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
            return False
        self.metrics.messages_out.labels(channel.name).inc()
        return True

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
