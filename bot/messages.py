"""Channel-neutral message types. Channels translate their wire format to and from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Button:
    text: str
    payload: str  # e.g. "approve:42"; at most 64 bytes (Telegram callback_data)

    def __post_init__(self) -> None:
        if len(self.payload.encode()) > 64:
            raise ValueError(f"button payload over 64 bytes: {self.payload!r}")


@dataclass(frozen=True)
class Attachment:
    name: str
    content: bytes
    mime_type: str | None = None


@dataclass(frozen=True)
class Incoming:
    """A message, button press or file from a chat account."""

    channel: str  # terminal | telegram | wecom
    account: str  # the platform's id of the sender
    text: str = ""
    button: str | None = None  # payload of the pressed button
    file: Attachment | None = None
    ref: dict[str, Any] = field(default_factory=dict)  # platform details a reply may need (card ids ...)


@dataclass(frozen=True)
class Reply:
    """Something to show. ``to`` names another org user (a card to a manager); None = the sender.

    ``replace_card``: when answering a button press, the first reply to the presser replaces the
    card the button was on (Telegram: the message is edited, its keyboard removed or replaced by
    this reply's buttons; WeCom: the card's buttons become one grey label, the reply's first line).
    False = send it as a new message and leave the card alone (e.g. a "thanks for the feedback").
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    markdown: bool = False
    files: tuple[Attachment, ...] = ()
    to: str | None = None
    replace_card: bool = True
