"""The one conversation core every network channel feeds: dedupe, route, deliver, measure.

A channel builds an ``Incoming`` and calls ``receive``; the router decides what it means and the
delivery layer sends the replies. Retried deliveries are dropped here by their platform key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from bot import texts
from bot.dedupe import Dedupe
from bot.delivery import Delivery
from bot.messages import Attachment, Incoming, Reply
from bot.metrics import Metrics
from bot.router import Router, Turn

log = logging.getLogger(__name__)


def preview(text: str, size: int = 12) -> str:
    """A short prefix of a message body for logs (never the whole message)."""
    return text[:size] + ("…" if len(text) > size else "")


class Conversation:
    def __init__(self, router: Router, delivery: Delivery, dedupe: Dedupe, metrics: Metrics):
        self.router = router
        self.delivery = delivery
        self.dedupe = dedupe
        self.metrics = metrics
        self._turns: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def in_order(self, channel: str, account: str) -> AsyncIterator[None]:
        """One account's messages are handled one after another, in arrival order (asyncio locks
        are FIFO); different accounts run concurrently. Enter it before the first ``await``."""
        key = (channel, account)
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users <= 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    async def seen_before(self, channel: str, *keys: str) -> bool:
        """True if any key was seen already (a retry or a double press); records the new ones.

        The database insert (a commit, so an fsync on SQLite) runs in a worker thread: the event
        loop keeps serving other chats meanwhile. A repeat seen recently is answered from memory.
        """
        for key in keys:
            if self.dedupe.known(key) or not await asyncio.to_thread(self.dedupe.first_time, key):
                self.metrics.duplicates.labels(channel).inc()
                log.info("duplicate dropped", extra={"channel": channel, "key": key[:64]})
                return True
        return False

    async def receive(self, msg: Incoming) -> list[Reply]:
        """Answer one message and deliver the answers; returns them (for tests and the bench)."""
        started = time.perf_counter()
        self.metrics.messages_in.labels(msg.channel).inc()
        log.info("message in", extra={"channel": msg.channel, "kind": _kind(msg),
                                       "text": preview(msg.text), "button": (msg.button or "")[:32]})
        replies = await self.router.handle(msg)
        await self.delivery.deliver(msg, replies)
        self.metrics.reply_latency.labels(msg.channel).observe(time.perf_counter() - started)
        return replies

    async def unsupported(self, channel: str, account: str) -> None:
        """A message kind we do not handle (photo, voice, sticker ...): say so, or, to a stranger,
        only how to register."""
        known = self.router.directory.resolve(channel, account) is not None
        reply = Reply(texts.UNSUPPORTED_MESSAGE if known else texts.UNKNOWN_ACCOUNT)
        await self.delivery.send(channel, account, reply)

    def may_upload(self, channel: str, account: str) -> bool:
        """Whether a file from this account would reach the file handler (so is worth downloading)."""
        if self.router.file_handler is None:
            return False
        user = self.router.directory.resolve(channel, account)
        return bool(user and user.active and user.role in self.router.file_handler[1])

    async def upload(self, user_id: str, attachment: Attachment, note: str = "") -> list[Reply] | None:
        """A file from the admin API, handed to the same handler as a chat upload.

        None when no file handler is installed; PermissionError when the user may not upload.
        """
        if self.router.file_handler is None:
            return None
        handler, roles = self.router.file_handler
        user = self.router.directory.get(user_id)
        if user is None or not user.active or user.role not in roles:
            raise PermissionError(user_id)
        msg = Incoming("api", user_id, text=note, file=attachment)
        self.metrics.messages_in.labels("api").inc()
        result = await handler(Turn(msg, user, note))
        replies = [] if result is None else [result] if isinstance(result, Reply) else list(result)
        for reply in replies:  # pushes the handler addressed to others (e.g. talk tracks)
            if reply.to is not None and reply.to != user_id:
                await self.delivery.push(reply.to, reply)
        return replies


def _kind(msg: Incoming) -> str:
    if msg.button is not None:
        return "button"
    if msg.file is not None:
        return "file"
    return "text"
