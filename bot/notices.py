"""Turn skills' notices into replies: the sender's own stay in the conversation, the rest are pushes."""

from __future__ import annotations

from collections.abc import Iterable

from bot.messages import Button, Reply
from skills.notices import Notice


def notice_reply(notice: Notice, sender: str | None = None) -> Reply:
    buttons = tuple(tuple(Button(label, payload) for label, payload in row) for row in notice.buttons)
    return Reply(notice.text, buttons=buttons, to=None if notice.to == sender else notice.to)


def notice_replies(notices: Iterable[Notice], sender: str | None = None) -> list[Reply]:
    return [notice_reply(n, sender) for n in notices]
