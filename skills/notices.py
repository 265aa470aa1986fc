"""A message for one org user, produced by a skill; the bot layer turns it into a ``Reply(to=...)``.

Skills never import ``bot``: they return these and whoever runs them delivers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    to: str  # org user id
    text: str
    kind: str = "info"  # e.g. breakpoint, digest, tag_hook
    buttons: tuple[tuple[str, str], ...] = ()  # (label, payload) pairs, one row
