"""Policy-triggered pushes, end to end: impact -> talk tracks -> queue -> delivery -> feedback.

- ``trigger_document`` runs impact analysis for a stored document version (after an upload, or
  again with ``salesbot push rerun``), builds one talk track per affected rep and a digest per
  manager, and queues them (``skills.pushqueue``; one push per document version and recipient).
  ``dry_run`` (``salesbot push preview``) only reports.
- ``PushDrainer`` runs inside ``salesbot serve``: claims queued pushes and sends them through
  ``Delivery`` (per-channel rate limits, 429/45009 waits, backoff); a send that still fails goes
  back to the queue with a longer back-off, and ends ``failed`` after ``SALESBOT_PUSH_MAX_ATTEMPTS``.
- ``register_pushes`` adds the 有用/没用 buttons and ``POST /api/events/opinion``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery import Delivery, split_reply
from bot.messages import Button, Reply
from bot.settings import Settings
from knowledge import texts as ktexts
from knowledge.impact import (
    ALL_REGIONS,
    DocInfo,
    Impact,
    ImpactConfig,
    Passage,
    affected,
    analyse,
    load_org,
    match_products,
    passages_of,
)
from knowledge.talktracks import (
    CarePack,
    TalkTrack,
    build_talk_track,
    manager_digest,
    what_changed,
    write_with_llm,
)
from skills import pushqueue
from skills.pushqueue import PushItem
from storage.db import session_scope
from storage.models import Document, Push, Role
from storage.types import utcnow

log = logging.getLogger(__name__)

LEVELS = ("blue", "yellow", "orange", "red")
CARE_FROM = "orange"
FEEDBACK_PREFIX = "pfb"
FEEDBACK_KINDS = ("talk_track", "care_pack")
FIRST_SLICE, ENQUEUE_SLICE = 50, 500  # talk tracks queued together (the first ones sooner)


def talk_track_writer(settings: Settings) -> Callable[[TalkTrack], TalkTrack] | None:
    """The LLM talk-track writer when SALESBOT_LLM_* is set; None = the template tracks."""
    if not (settings.llm_base_url and settings.llm_model):
        return None
    from knowledge.answer import make_llm

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    llm = make_llm(settings.llm_base_url, settings.llm_model, key, settings.llm_timeout)
    return partial(write_with_llm, llm=llm)


def impact_config(settings: Settings) -> ImpactConfig:
    return ImpactConfig(
        min_product_score=settings.impact_min_score,
        metadata_score=settings.impact_metadata_score,
        include_won=settings.impact_include_won,
    )


# --- from a document to queued pushes -----------------------------------------------------------
@dataclass
class TriggerReport:
    impact: Impact
    items: list[PushItem]
    created: list[int] = field(default_factory=list)
    existing: int = 0
    updated: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def talk_tracks(self) -> list[PushItem]:
        return [i for i in self.items if i.kind == "talk_track"]

    def summary(self, names: dict[str, str] | None = None) -> str:
        names = names or {}
        imp = self.impact
        if not imp.products:
            return "影响分析：没有发现涉及我司产品的条款，不推送。"
        products = "、".join(f"{p.name}（{p.code}，{p.score:.2f}）" for p in imp.products)
        lines = [
            f"影响分析：涉及产品 {products}",
            f"地区：{'、'.join(imp.regions) or '—'}（{imp.region_evidence}）",
        ]
        if not imp.customers:
            lines.append("受影响客户：无（这些地区没有相关产品的商机），不推送。")
            return "\n".join(lines)
        opps = sum(len(c.opportunities) for c in imp.customers)
        lines.append(
            f"受影响客户 {len(imp.customers)} 家：{'、'.join(c.name for c in imp.customers)}；商机 {opps} 个"
        )
        reps = "、".join(names.get(r, r) for r in imp.reps)
        digests = len(self.items) - len(self.talk_tracks)
        if self.dry_run:
            lines.append(f"将推送：代表 {len(imp.reps)} 位（{reps}），经理汇总 {digests} 条（预览，未发送）")
        else:
            new = len(self.created)
            lines.append(
                f"推送：代表 {len(imp.reps)} 位（{reps}）；已排队 {new} 条"
                + (f"，{self.existing} 条此前已推送、不重复" if self.existing else "")
            )
        if self.updated:
            lines.append(f"和上一版相比有 {len(self.updated)} 处变化，推送里写明了“变化”。")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "impact": self.impact.as_dict(),
            "dry_run": self.dry_run,
            "created": self.created,
            "existing": self.existing,
            "updated": self.updated,
            "pushes": [{"key": i.dedupe_key, "user": i.user_id, "kind": i.kind} for i in self.items],
        }


def find_document(session: Session, ref: str) -> Document | None:
    return session.get(Document, ref) or session.exec(select(Document).where(Document.source == ref)).first()


def trigger_document(
    engine: Engine,
    ref: str,
    config: ImpactConfig,
    *,
    dry_run: bool = False,
    digest: bool = True,
    now: datetime | None = None,
    writer: Callable[[TalkTrack], TalkTrack] | None = None,
) -> TriggerReport:
    """Impact analysis of the document's current version and, unless ``dry_run``, its pushes queued."""
    with Session(engine) as session:
        doc = find_document(session, ref)
        if doc is None:
            raise LookupError(f"没有这个文档：{ref}")
        passages = passages_of(session, doc.id)
        org = load_org(session)
    info = DocInfo.of(doc)
    versions: dict[str, Any] = dict((doc.extra or {}).get("impact_versions", {}))
    current = [[p.section, p.text[:200]] for p in passages]
    earlier = [int(v) for v in versions if int(v) < doc.version]
    updated = what_changed(versions[str(max(earlier))], current) if earlier else []
    impact = analyse(info, passages, org, config)
    items: list[PushItem] = []
    created: list[int] = []
    existing = 0
    pending = 0

    def flush() -> None:  # queue in slices: the first reps are being sent to while the rest is built
        nonlocal existing, pending
        if not dry_run and len(items) > pending:
            new, old = pushqueue.enqueue(engine, items[pending:], now)
            created.extend(new)
            existing += old
        pending = len(items)

    for rep in impact.reps:
        if len(items) - pending >= ENQUEUE_SLICE or (len(items) == FIRST_SLICE and pending == 0):
            flush()
        track = build_talk_track(impact, rep, org, updated=updated)
        if writer is not None and not dry_run:
            track = writer(track)
        items.append(
            PushItem(
                f"doc:{doc.id}:v{doc.version}:{rep}",
                rep,
                "talk_track",
                {"text": track.render(), "track": track.as_dict()},
                doc.id,
                doc.version,
            )
        )
    if digest:
        for manager in impact.managers:
            items.append(
                PushItem(
                    f"doc:{doc.id}:v{doc.version}:digest:{manager}",
                    manager,
                    "digest",
                    {"text": manager_digest(impact, manager, org)},
                    doc.id,
                    doc.version,
                )
            )
    report = TriggerReport(impact, items, updated=updated, dry_run=dry_run)
    flush()
    report.created, report.existing = created, existing
    if dry_run:
        with Session(engine) as session:
            keys = [i.dedupe_key for i in items]
            report.existing = (
                len(list(session.exec(select(Push.id).where(col(Push.dedupe_key).in_(keys))))) if keys else 0
            )
        return report
    with session_scope(engine) as session:
        stored = session.get(Document, doc.id)
        if stored is not None and stored.version == doc.version:
            extra = dict(stored.extra or {})
            kept = {k: v for k, v in extra.get("impact_versions", {}).items() if int(k) == doc.version - 1}
            kept[str(doc.version)] = current
            extra["impact_versions"] = kept
            extra["impact"] = {
                "version": doc.version,
                "products": impact.product_codes,
                "regions": impact.regions,
                "reps": list(impact.reps),
                "at": (now or utcnow()).isoformat(),
            }
            stored.extra = extra
            session.add(stored)
    return report


def user_names(engine: Engine) -> dict[str, str]:
    from storage.models import User

    with Session(engine) as session:
        return {u.id: u.name for u in session.exec(select(User))}


def after_ingest(engine: Engine, settings: Settings, result: Any) -> str | None:
    """What an upload triggered, for the uploader; None when the library does not push."""
    doc = result.document
    if doc.library not in settings.push_libraries:
        return None
    if result.status == "duplicate":
        return "内容和已入库的版本相同：不重复推送。"
    try:
        report = trigger_document(
            engine, doc.id, impact_config(settings), digest=settings.push_manager_digest,
            writer=talk_track_writer(settings),
        )
    except Exception:
        log.exception("impact analysis failed", extra={"document": doc.id})
        return "影响分析失败，文件已入库；请稍后用 salesbot push rerun 重新分析。"
    return report.summary(user_names(engine))


# --- the worker ------------------------------------------------------------------------------------
def push_reply(push: Push) -> Reply:
    buttons: tuple[tuple[Button, ...], ...] = ()
    if push.kind in FEEDBACK_KINDS:
        buttons = (
            (
                Button("👍 有用", f"{FEEDBACK_PREFIX}:{push.id}:up"),
                Button("👎 没用", f"{FEEDBACK_PREFIX}:{push.id}:down"),
            ),
        )
    return Reply(str(push.body.get("text", "")), buttons=buttons)


class PushDrainer:
    """Sends queued pushes; any number of these (in one or several processes) may run together."""

    def __init__(
        self,
        engine: Engine,
        delivery: Delivery,
        *,
        batch: int = 60,
        idle: float = 0.5,
        lease: float = 300.0,
        max_attempts: int = 8,
        retry_seconds: float = 5.0,
        worker: str | None = None,
    ):
        self.engine, self.delivery = engine, delivery
        self.batch, self.idle, self.lease = batch, idle, lease
        self.max_attempts, self.retry_seconds = max_attempts, retry_seconds
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.sent = 0
        self.failed = 0
        self._wake = asyncio.Event()

    @classmethod
    def from_settings(cls, engine: Engine, delivery: Delivery, settings: Settings, **kw: Any) -> PushDrainer:
        return cls(
            engine,
            delivery,
            batch=settings.push_batch,
            idle=settings.push_idle_seconds,
            lease=settings.push_lease_seconds,
            max_attempts=settings.push_max_attempts,
            retry_seconds=settings.push_retry_seconds,
            **kw,
        )

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Keep up to ``batch`` sends in flight, claiming more as they finish (no gap between batches
        for the rate limiter to waste); on stop, unfinished claims go back to the queue."""
        inflight: dict[asyncio.Task[None], Push] = {}
        try:
            while True:
                room = self.batch - len(inflight)
                rows: list[Push] = []
                if room > 0 and (room >= max(1, self.batch // 2) or not inflight):
                    try:
                        rows = await asyncio.to_thread(
                            pushqueue.claim, self.engine, self.worker, limit=room, lease=self.lease
                        )
                    except Exception:
                        log.exception("push claim failed")
                for row in rows:
                    inflight[asyncio.create_task(self._send(row))] = row
                if inflight:
                    done, _ = await asyncio.wait(
                        list(inflight),
                        timeout=None if rows or room <= 0 else self.idle,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    for task in done:
                        inflight.pop(task)
                        if task.exception() is not None:
                            log.error("push send failed", exc_info=task.exception())
                else:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.idle)
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
                pushqueue.release(self.engine, list(inflight.values()))

    async def drain_once(self, now: datetime | None = None) -> int:
        rows = await asyncio.to_thread(
            pushqueue.claim, self.engine, self.worker, limit=self.batch, now=now, lease=self.lease
        )
        if rows:
            await asyncio.gather(*(self._send(row) for row in rows))
        return len(rows)

    async def drain(self, timeout: float = 60.0) -> None:
        """Until nothing is due (tests, CLI)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.drain_once() and loop.time() < deadline:
            pass

    async def _send(self, push: Push) -> None:
        target = self.delivery.address(push.user_id)
        if target is None:
            await asyncio.to_thread(
                pushqueue.mark_retry,
                self.engine,
                push,
                "no channel reaches this user",
                max_attempts=self.max_attempts,
                permanent=True,
            )
            self.failed += 1
            return
        channel = self.delivery.channels[target[0]]
        parts = split_reply(push_reply(push), channel.max_text, channel.measure)
        for index in range(push.parts_sent, len(parts)):
            error = await self.delivery.send_once(target[0], target[1], parts[index])
            if error is not None:
                state = await asyncio.to_thread(
                    pushqueue.mark_retry,
                    self.engine,
                    push,
                    f"{type(error).__name__}: {error}",
                    max_attempts=self.max_attempts,
                    base_backoff=self.retry_seconds,
                    permanent=not error.retry,
                )
                self.failed += state == "failed"
                return
            if len(parts) > 1:
                await asyncio.to_thread(pushqueue.mark_progress, self.engine, push, index + 1)
        await asyncio.to_thread(pushqueue.mark_sent, self.engine, push)
        self.sent += 1


# --- chat, events, CLI -------------------------------------------------------------------------------
def care_packs(
    engine: Engine, config: ImpactConfig, event: dict[str, Any], offers: dict[str, list[str]]
) -> tuple[list[PushItem], list[str]]:
    """Care packs for the reps an opinion event concerns: owners of customers in its regions with the
    named (or keyword-matched) products; without products, every rep of those regions."""
    with Session(engine) as session:
        org = load_org(session)
    regions = org.regions if ALL_REGIONS in event["regions"] else event["regions"]
    codes = [c for c in event["products"] if c in org.products]
    if event["keywords"]:
        probe = [Passage("event", " ".join(event["keywords"]) + " " + event["title"])]
        codes += [h.code for h in match_products(probe, org.products.values(), config) if h.code not in codes]
    if codes:
        hits = affected(org, regions, codes, config)
        reps = sorted({h.owner_id for h in hits})
        customers = {r: [h.name for h in hits if h.owner_id == r] for r in reps}
    else:
        reps = sorted(
            u.id for u in org.users.values() if u.role == Role.rep and u.region in regions and u.active
        )
        customers = {r: [c.name for c in org.customers.values() if c.owner_id == r] for r in reps}
    items = []
    for rep in reps:
        pack = CarePack(
            rep,
            event["level"],
            event["title"],
            event["facts"] or [event["title"]],
            event["wording"] or ktexts.CARE_DEFAULT_WORDING,
            [*offers.get(rep, []), ktexts.CARE_OFFER_DEFAULT],
            customers.get(rep, []),
        )
        items.append(
            PushItem(
                f"opinion:{event['event_id']}:{rep}",
                rep,
                "care_pack",
                {"text": pack.render(), "pack": pack.as_dict()},
                f"opinion:{event['event_id']}",
                0,
            )
        )
    return items, codes


def parse_opinion(payload: dict[str, Any]) -> dict[str, Any]:
    level = str(payload.get("level", "")).lower()
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")

    def strings(name: str) -> list[str]:
        value = payload.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        return value

    regions = strings("regions")
    if not regions:
        raise ValueError("regions must name at least one region (or 全国)")
    event = {
        "level": level,
        "regions": regions,
        "products": strings("products"),
        "keywords": strings("keywords"),
        "facts": strings("facts"),
        "title": str(payload.get("title") or "舆情预警"),
        "wording": str(payload.get("wording") or ""),
    }
    event["event_id"] = str(
        payload.get("event_id")
        or hashlib.sha256(json.dumps(event, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
    )
    return event


def handle_opinion(
    app: Any, payload: dict[str, Any], now: datetime | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """Set each region's ``opinion_level`` through the permission engine (the opinion rules fire
    there), and at orange or above queue a care pack for each affected rep."""
    from skills.texts import CAP_NAMES

    event = parse_opinion(payload)
    now = now or utcnow()
    with Session(app.engine) as session:
        org = load_org(session)
    regions = org.regions if ALL_REGIONS in event["regions"] else event["regions"]
    unknown = [r for r in regions if r not in org.regions]
    if unknown:
        raise ValueError(f"unknown region(s): {', '.join(unknown)}; known: {', '.join(org.regions)}")
    offers: dict[str, list[str]] = {}
    with session_scope(app.engine) as session:
        changes = []
        for region in regions:
            changes += app.actions.permissions.set_tags(
                session,
                "region",
                region,
                {"opinion_level": event["level"]},
                source=f"opinion:{event['event_id']}",
                now=now,
                actor="opinion",
            )
        notices = app.actions.grant_notices(session, changes)
        for change in changes:
            if change.opened:
                g = change.grant
                limit = f" ≤ {g.limit:.0f} 元" if g.limit else ""
                until = f"，至 {g.ends_at:%m-%d %H:%M} UTC" if g.ends_at else ""
                free = "，免审批" if g.approval_free else ""
                offers.setdefault(g.user_id, []).append(
                    f"{CAP_NAMES.get(g.capability, g.capability)}{limit}{free}{until}"
                )
    body: dict[str, Any] = {
        "event_id": event["event_id"],
        "level": event["level"],
        "regions": regions,
        "grants_opened": sum(c.opened for c in changes),
        "grants_closed": sum(not c.opened for c in changes),
        "care_packs": 0,
        "products": [],
    }
    if LEVELS.index(event["level"]) >= LEVELS.index(CARE_FROM):
        items, codes = care_packs(app.engine, impact_config(app.settings), event, offers)
        created, existing = pushqueue.enqueue(app.engine, items, now)
        body.update(
            care_packs=len(created), already_queued=existing, products=codes, reps=[i.user_id for i in items]
        )
    return body, notices


def register_pushes(app: Any) -> None:
    """The 有用/没用 buttons and ``POST /api/events/opinion``."""
    from bot.api import EventOutcome
    from bot.notices import notice_replies
    from bot.router import Turn

    @app.router.button(FEEDBACK_PREFIX)
    async def feedback(turn: Turn) -> Reply:
        push_id, _, value = turn.args.partition(":")
        if not push_id.isdigit() or value not in pushqueue.FEEDBACK:
            return Reply("这个按钮已失效。", replace_card=False)
        push = await asyncio.to_thread(
            pushqueue.record_feedback, app.engine, int(push_id), turn.user.id, value
        )
        if push is None:
            return Reply("这条推送不是发给你的。", replace_card=False)
        return Reply(
            "已记录：有用，谢谢！" if value == "up" else "已记录：没用。我们会改进这类推送。",
            replace_card=False,
        )

    @app.api.event("opinion")
    async def opinion(payload: dict[str, Any]) -> EventOutcome:
        body, notices = await asyncio.to_thread(handle_opinion, app, payload)
        return EventOutcome(body, notice_replies(notices))


def on_ingest_hook(app: Any) -> Callable[[Any], str | None]:
    return lambda result: after_ingest(app.engine, app.settings, result)
