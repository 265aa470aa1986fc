"""Extension points of ``salesbot serve`` that later features fill in.

``ApiHooks.events`` maps an event kind (``signal``, ``order``, ...) to an async handler taking the
JSON body and returning a JSON-able result; ``POST /api/events/{kind}`` calls it. A kind nobody
registered answers 501 naming what is missing, so callers learn early and clearly.

``ApiHooks.jobs`` are periodic jobs (approval time-outs, push retries ...): ``@app.api.every(60)``
on ``async def job(now) -> list[Reply]``; the server runs each one every so many seconds and
delivers the replies it returns (each with ``to`` set) to those users' channels.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.messages import Reply


@dataclass
class EventOutcome:
    """What an event handler may return: the JSON ``body`` and pushes for the people concerned."""

    body: Any
    replies: list[Reply] = field(default_factory=list)


EventHandler = Callable[[dict[str, Any]], Awaitable[Any]]  # raise ValueError -> 422
Job = Callable[[datetime], Awaitable[list[Reply]]]


@dataclass
class ApiHooks:
    events: dict[str, EventHandler] = field(default_factory=dict)
    jobs: list[tuple[float, Job]] = field(default_factory=list)

    def every(self, seconds: float) -> Callable[[Job], Job]:
        def register(job: Job) -> Job:
            self.jobs.append((seconds, job))
            return job
        return register

    def event(self, kind: str) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            self.events[kind] = handler
            return handler
        return register
