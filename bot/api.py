"""Extension points of the admin API that later features fill in.

``ApiHooks.events`` maps an event kind (``signal``, ``order``, ...) to an async handler taking the
JSON body and returning a JSON-able result; ``POST /api/events/{kind}`` calls it. A kind nobody
registered answers 501 naming what is missing, so callers learn early and clearly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

EventHandler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass
class ApiHooks:
    events: dict[str, EventHandler] = field(default_factory=dict)

    def event(self, kind: str) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            self.events[kind] = handler
            return handler
        return register
