"""A message for one org user, produced by a skill; the bot layer turns it into a ``Reply(to=...)``.

Skills never import ``bot``: they return these and whoever runs them delivers.
"""

from __future__ import annotations

from dataclasses import dataclass

ButtonRows = tuple[tuple[tuple[str, str], ...], ...]  # rows of (label, payload)


@dataclass(frozen=True)
class Notice:
    to: str  # org user id
    text: str
    buttons: ButtonRows = ()
    kind: str = "info"  # e.g. approval, breakpoint, digest, grant
