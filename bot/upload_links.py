"""``/upload``: a one-time, short-lived link to an upload page, for admins on any channel.

WeCom's self-built apps may never deliver file messages, so a knowledge admin asks for a link
and uploads in the browser. The admin role is checked when the link is made and again when the
file arrives; a link works once and expires after ``ttl`` (kept in memory: a restart voids them).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from bot import texts
from bot.messages import Reply
from bot.router import Router, Turn
from storage.models import Role

UPLOAD_PATH = "/upload/"


@dataclass
class _Link:
    user_id: str
    expires: float


class UploadLinks:
    def __init__(self, public_url: str | None, ttl: float = 900.0):
        self.public_url = public_url.rstrip("/") if public_url else None
        self.ttl = ttl
        self._links: dict[str, _Link] = {}

    def create(self, user_id: str) -> str:
        self._purge()
        token = secrets.token_urlsafe(24)
        self._links[token] = _Link(user_id, time.monotonic() + self.ttl)
        return token

    def peek(self, token: str) -> str | None:
        link = self._links.get(token)
        return link.user_id if link and link.expires > time.monotonic() else None

    def consume(self, token: str) -> str | None:
        user_id = self.peek(token)
        self._links.pop(token, None)
        return user_id

    def _purge(self) -> None:
        now = time.monotonic()
        for token in [t for t, link in self._links.items() if link.expires <= now]:
            del self._links[token]

    def register(self, router: Router) -> None:
        @router.command("upload", "获取上传文档的一次性网页链接", roles=[Role.admin])
        async def upload(turn: Turn) -> Reply:
            if self.public_url is None:
                return Reply(texts.UPLOAD_NO_URL)
            token = self.create(turn.user.id)
            return Reply(texts.UPLOAD_LINK.format(url=f"{self.public_url}{UPLOAD_PATH}{token}",
                                                  minutes=int(self.ttl // 60)))
