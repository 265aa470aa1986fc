"""What every chat channel offers the rest of the bot, and the errors its sends may raise.

A channel turns its platform's updates into ``Incoming`` messages for the ``Conversation`` and
sends ``Reply`` objects back. It knows its wire format and nothing else: who a reply goes to,
splitting, rate limits and retries are the delivery layer's job (``bot/delivery.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from bot.messages import Incoming, Reply


class SendError(Exception):
    """A send failed; ``retry`` says whether trying again can help."""

    retry = True

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(SendError):
    """The platform asked us to slow down (Telegram 429 RetryAfter, WeCom 45009)."""


class PermanentSendError(SendError):
    """Retrying cannot help (user blocked the bot, chat not found, invalid user id)."""

    retry = False


class StartupError(RuntimeError):
    """A channel cannot start; the message names the setting to fix."""


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


class Channel(ABC):
    """One chat platform: started and stopped with the server, sends to one account at a time."""

    name: str
    #: the largest text one message may carry, measured by ``measure``
    max_text: int = 4096
    measure: Callable[[str], int] = staticmethod(len)  # type: ignore[assignment]

    @abstractmethod
    async def start(self) -> None:
        """Connect (check credentials, start polling or register the webhook)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving, finish work in flight, close connections."""

    @abstractmethod
    async def send(self, account: str, reply: Reply) -> None:
        """Send one reply (already split to ``max_text``) to ``account``; raises ``SendError``."""

    async def edit(self, pressed: Incoming, reply: Reply) -> bool:
        """Replace the card the button in ``pressed`` was on; False if this channel cannot."""
        return False

    def after_edit(self, reply: Reply) -> Reply | None:
        """What to send as a message after ``edit`` showed ``reply`` (when the card shows less)."""
        return None
