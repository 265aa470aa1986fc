"""Signals configuration from Settings, and the background jobs ``serve`` runs.

``schedule_jobs(scheduler, app, send)`` adds two jobs to an APScheduler scheduler (an
``AsyncIOScheduler`` in ``serve``): the daily health digest at ``SALESBOT_DIGEST_HOUR`` and, every
``SALESBOT_JOURNEY_DUE_EVERY_SECONDS``, the decision of journey windows that have closed. Each
turns the notices into ``Reply(to=user)`` and hands them to ``send(user_id, reply)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.app import App
from bot.messages import Reply
from bot.notices import notice_reply
from bot.signals_config import health_config, journey_rules
from skills.notices import Notice
from skills.signals.health import daily_digest
from skills.signals.journey import evaluate_due
from storage.types import utcnow

log = logging.getLogger(__name__)
Send = Callable[[str, Reply], Awaitable[None]]


async def deliver(notices: list[Notice], send: Send) -> int:
    for n in notices:
        try:
            await send(n.to, notice_reply(n))
        except Exception:
            log.exception("could not deliver a %s notice to %s", n.kind, n.to)
    return len(notices)


async def run_digest(app: App, send: Send) -> int:
    notices = await asyncio.to_thread(daily_digest, app.engine, utcnow(), health_config(app.settings))
    return await deliver(notices, send)


async def run_journey_due(app: App, send: Send) -> int:
    s = app.settings
    outcome = await asyncio.to_thread(evaluate_due, app.engine, journey_rules(s), utcnow(),
                                      lateness=timedelta(seconds=s.journey_lateness_seconds),
                                      repeat_days=s.journey_repeat_days)
    return await deliver(outcome.notices, send)


def schedule_jobs(scheduler: Any, app: App, send: Send) -> list[Any]:
    """Add the digest and journey jobs; returns the APScheduler jobs."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    s = app.settings
    return [
        scheduler.add_job(run_digest, CronTrigger(hour=s.digest_hour, minute=0, timezone=s.digest_timezone),
                          args=(app, send), id="signals-daily-digest", replace_existing=True,
                          coalesce=True, misfire_grace_time=3600),
        scheduler.add_job(run_journey_due, IntervalTrigger(seconds=s.journey_due_every_seconds),
                          args=(app, send), id="signals-journey-due", replace_existing=True, coalesce=True,
                          max_instances=1),
    ]


def register_event_api(app: App) -> None:
    """``POST /api/events/tags`` (CRM/ERP updates) and ``POST /api/events/journey`` (touchpoints).

    Tag events go through the same tag path as notes, so they re-run the permission rules; the
    notices (grants opened or closed, breakpoint alerts) are pushed to the people concerned.
    """
    from bot.api import EventOutcome
    from bot.notices import notice_replies
    from skills.signals.events import EventRejected, ingest_journey_events, ingest_tag_event

    @app.api.event("tags")
    async def tags(payload: dict[str, Any]) -> EventOutcome:
        source = str(payload.pop("source", "api"))
        try:
            result = await asyncio.to_thread(ingest_tag_event, app.engine, payload, source=source)
        except EventRejected as exc:
            raise ValueError(str(exc)) from None
        body = {"status": result.status,
                "changes": [{"customer": c.customer_id, "tag": c.tag, "old": c.old_value, "new": c.new_value}
                            for c in result.changes]}
        return EventOutcome(body, notice_replies(result.notices))

    @app.api.event("journey")
    async def journey(payload: dict[str, Any]) -> EventOutcome:
        events = payload.get("events")
        if not isinstance(events, list):
            raise ValueError('body must be {"events": [...], "source": "web"}')
        s = app.settings
        report = await asyncio.to_thread(ingest_journey_events, app.engine, events,
                                         source=str(payload.get("source", "api")), rules=journey_rules(s),
                                         repeat_days=s.journey_repeat_days)
        return EventOutcome(report.as_dict(), notice_replies(report.notices))
