"""The HTTP server of ``salesbot serve`` (FastAPI + uvicorn) and the runtime it hosts.

Routes: ``GET /healthz``, ``GET /metrics`` (Prometheus), ``GET|POST /wecom/callback`` (when WeCom
is configured), ``POST /telegram/webhook/<secret>`` (when Telegram runs in webhook mode) and the
admin API under ``/api/`` (bearer tokens from ``SALESBOT_ADMIN_TOKENS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from bot import texts
from bot.api import EventOutcome, Job
from bot.app import App
from bot.channels.base import Channel
from bot.channels.telegram import TelegramChannel
from bot.channels.wecom import CallbackRejected, WeComChannel
from bot.conversation import Conversation
from bot.dedupe import Dedupe
from bot.delivery import Delivery
from bot.messages import Attachment, Reply
from bot.metrics import Metrics
from bot.upload_links import UPLOAD_PATH, UploadLinks
from storage.types import utcnow

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook/"
MAX_WEBHOOK_BYTES = 1024 * 1024


@dataclass
class Runtime:
    """The running bot: conversation core, delivery and the configured channels."""

    app: App
    metrics: Metrics
    delivery: Delivery
    conversation: Conversation
    telegram: TelegramChannel | None = None
    wecom: WeComChannel | None = None
    uploads: UploadLinks | None = None
    started: list[Channel] = field(default_factory=list)
    jobs: list[asyncio.Task[None]] = field(default_factory=list)
    scheduler: Any = None  # APScheduler AsyncIOScheduler for clock-time jobs (the daily digest)
    outbox_interval: float = 30.0  # how often parked sends are tried again
    pushes: Any = None  # bot.pushes.PushDrainer: drains the durable push queue (talk tracks, care packs)

    @property
    def channels(self) -> list[Channel]:
        return [c for c in (self.telegram, self.wecom) if c is not None]

    async def start(self) -> None:
        """Start every configured channel, then the periodic jobs; if a channel fails, stop the others."""
        for channel in self.channels:
            try:
                await channel.start()
            except BaseException:
                await self.stop()
                raise
            self.started.append(channel)
        self.jobs = [asyncio.create_task(self._every(seconds, job)) for seconds, job in self.app.api.jobs]
        self.jobs.append(asyncio.create_task(self._every(self.outbox_interval, self._retry_parked)))
        if self.pushes is not None:
            self.jobs.append(asyncio.create_task(self.pushes.run()))
        self.scheduler = _start_scheduler(self)

    async def _retry_parked(self, now: datetime) -> list[Reply]:
        await self.delivery.retry_parked(now)
        return []

    async def _every(self, seconds: float, job: Job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                for reply in await job(utcnow()):
                    if reply.to is None:
                        log.warning("job reply without a recipient dropped", extra={"job": job.__name__})
                        continue
                    await self.delivery.push(reply.to, reply)
            except Exception:
                log.exception("periodic job failed", extra={"job": job.__name__})

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        for task in self.jobs:
            task.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        self.jobs = []
        while self.started:
            channel = self.started.pop()
            try:
                await channel.stop()
            except Exception:
                log.exception("channel stop failed", extra={"channel": channel.name})


def build_runtime(app: App, *, retry_window: float = 600.0, telegram_poll_timeout: int = 10,
                  outbox_interval: float = 30.0, max_backoff: float = 30.0,
                  approvals_interval: float = 60.0) -> Runtime:
    s = app.settings
    metrics = Metrics()
    delivery = Delivery(app.directory, metrics, retry_window=retry_window, max_backoff=max_backoff,
                        engine=app.engine)
    conversation = Conversation(app.router, delivery, Dedupe(app.engine), metrics)
    runtime = Runtime(app, metrics, delivery, conversation, uploads=UploadLinks(s.public_url),
                      outbox_interval=outbox_interval)
    runtime.uploads.register(app.router)  # type: ignore[union-attr]
    from bot.pushes import PushDrainer

    runtime.pushes = PushDrainer.from_settings(app.engine, delivery, s)
    _schedule_due_approvals(app, approvals_interval)
    max_upload = s.max_upload_mb * 1024 * 1024
    if s.telegram_enabled:
        assert s.telegram_token is not None
        secret = s.telegram_webhook_secret.get_secret_value() if s.telegram_webhook_secret else None
        webhook_url = f"{s.public_url.rstrip('/')}{WEBHOOK_PATH}{secret}" if secret and s.public_url else None
        runtime.telegram = TelegramChannel(
            conversation, s.telegram_token.get_secret_value(), base_url=s.telegram_base_url,
            base_file_url=s.telegram_base_file_url, webhook_secret=secret, webhook_url=webhook_url,
            max_upload_bytes=max_upload, poll_timeout=telegram_poll_timeout)
        delivery.add(runtime.telegram, s.telegram_rate_limit)
    if s.wecom_enabled:
        assert s.wecom_secret and s.wecom_token and s.wecom_aes_key and s.wecom_agent_id and s.wecom_corp_id
        runtime.wecom = WeComChannel(
            conversation, corp_id=s.wecom_corp_id, secret=s.wecom_secret.get_secret_value(),
            agent_id=int(s.wecom_agent_id), token=s.wecom_token.get_secret_value(),
            aes_key=s.wecom_aes_key.get_secret_value(), api_base_url=s.wecom_api_base_url,
            max_upload_bytes=max_upload)
        delivery.add(runtime.wecom, s.wecom_rate_limit)
    return runtime


def _start_scheduler(runtime: Runtime) -> Any:
    """Clock-time jobs (the daily health digest) and the journey windows, on APScheduler."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs_signals import schedule_jobs

    async def send(user_id: str, reply: Reply) -> None:
        await runtime.delivery.push(user_id, reply)

    scheduler = AsyncIOScheduler(timezone="UTC")
    schedule_jobs(scheduler, runtime.app, send)
    scheduler.start()
    return scheduler


def _schedule_due_approvals(app: App, seconds: float) -> None:
    """The approvals scheduler: escalate or expire approvals past their deadline, tell those concerned."""
    service = app.actions
    if service is None or not hasattr(service, "process_due_approvals"):
        return
    from bot.handlers_actions import notice_replies

    async def due_approvals(now: datetime) -> list[Reply]:
        return notice_replies(await asyncio.to_thread(service.process_due_approvals, now))

    app.api.jobs.append((seconds, due_approvals))


def secret_values(app: App) -> list[str]:
    """Every configured secret, for the log redactor."""
    s = app.settings
    values = [s.telegram_token, s.telegram_webhook_secret, s.wecom_secret, s.wecom_token, s.wecom_aes_key,
              s.llm_api_key, *s.admin_tokens]
    return [v.get_secret_value() for v in values if v is not None]


def create_http_app(runtime: Runtime) -> FastAPI:
    app = runtime.app
    settings = app.settings
    http = FastAPI(title="salesbot", docs_url=None, redoc_url=None, openapi_url=None)
    admin_tokens = [t.get_secret_value().encode() for t in settings.admin_tokens]

    @http.get("/healthz")
    async def healthz() -> dict[str, Any]:
        channels: dict[str, str] = {}
        if runtime.telegram:
            channels["telegram"] = runtime.telegram.mode
        if runtime.wecom:
            channels["wecom"] = "callback"
        return {"status": "ok", "channels": channels}

    @http.get("/metrics")
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # WeCom ------------------------------------------------------------------------------
    if runtime.wecom is not None:
        wecom = runtime.wecom

        @http.get("/wecom/callback")
        async def wecom_verify(request: Request) -> PlainTextResponse:
            try:
                return PlainTextResponse(wecom.verify(request.query_params))
            except CallbackRejected as exc:
                log.warning("wecom verification refused", extra={"reason": exc.reason})
                return PlainTextResponse("refused", status_code=exc.status)

        @http.post("/wecom/callback")
        async def wecom_callback(request: Request) -> PlainTextResponse:
            body = await _read_limited(request, 64 * 1024)
            try:
                if body is None:
                    raise CallbackRejected(400, "body too large")
                wecom.accept(request.query_params, body)
            except CallbackRejected as exc:
                log.warning("wecom callback refused", extra={"reason": exc.reason, "status": exc.status})
                return PlainTextResponse("refused", status_code=exc.status)
            return PlainTextResponse("")  # at once; the work goes on in the background

    # Telegram webhook -----------------------------------------------------------------------
    if runtime.telegram is not None and runtime.telegram.webhook_secret:
        telegram = runtime.telegram
        expected = telegram.webhook_secret.encode()  # type: ignore[union-attr]

        @http.post(WEBHOOK_PATH + "{secret}")
        async def telegram_webhook(
            secret: str, request: Request,
            header: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
        ) -> Response:
            if not hmac.compare_digest(secret.encode(), expected) or (
                    header is not None and not hmac.compare_digest(header.encode(), expected)):
                return PlainTextResponse("not found", status_code=404)
            body = await _read_limited(request, MAX_WEBHOOK_BYTES)
            try:
                payload = json.loads(body or b"")
                if not isinstance(payload, dict) or "update_id" not in payload:
                    raise ValueError("not an update")
            except ValueError:
                return PlainTextResponse("bad update", status_code=400)
            await telegram.process_webhook(payload)
            return Response(status_code=200)

    # one-time upload page (/upload in chat) ----------------------------------------------------
    uploads = runtime.uploads

    @http.get(UPLOAD_PATH + "{token}")
    async def upload_page(token: str) -> HTMLResponse:
        user = app.directory.get(uploads.peek(token) or "") if uploads else None
        if user is None:
            return HTMLResponse(texts.UPLOAD_GONE, status_code=404)
        return HTMLResponse(texts.UPLOAD_PAGE.format(name=html.escape(user.name)))

    @http.post(UPLOAD_PATH + "{token}")
    async def upload_file(token: str, file: UploadFile, note: Annotated[str, Form()] = "") -> HTMLResponse:
        user_id = uploads.consume(token) if uploads else None
        if user_id is None:
            return HTMLResponse(texts.UPLOAD_GONE, status_code=404)
        limit = settings.max_upload_mb * 1024 * 1024
        content = await file.read(limit + 1)
        if len(content) > limit:
            return HTMLResponse(texts.FILE_TOO_LARGE.format(limit=settings.max_upload_mb), status_code=413)
        try:  # the role is checked again here, not only when the link was made
            replies = await runtime.conversation.upload(
                user_id, Attachment(file.filename or "document", content, file.content_type), note)
        except PermissionError:
            return HTMLResponse(texts.FILE_NOT_ALLOWED, status_code=403)
        if replies is None:
            return HTMLResponse("document ingest is not installed in this build", status_code=501)
        shown = "".join(f"<p>{html.escape(r.text)}</p>" for r in replies if r.to in (None, user_id))
        return HTMLResponse(texts.UPLOAD_DONE.format(replies=shown))

    # admin API ------------------------------------------------------------------------------
    async def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if not admin_tokens:
            raise HTTPException(503, "admin API disabled: set SALESBOT_ADMIN_TOKENS")
        scheme, _, token = (authorization or "").partition(" ")
        valid = any(hmac.compare_digest(token.encode(), t) for t in admin_tokens)
        if scheme.lower() != "bearer" or not valid:
            raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": "Bearer"})

    @http.post("/api/documents", dependencies=[Depends(admin)])
    async def upload_document(file: UploadFile, user: Annotated[str, Form()],
                              note: Annotated[str, Form()] = "") -> JSONResponse:
        limit = settings.max_upload_mb * 1024 * 1024
        content = await file.read(limit + 1)
        if len(content) > limit:
            raise HTTPException(413, f"file over {settings.max_upload_mb} MB (SALESBOT_MAX_UPLOAD_MB)")
        attachment = Attachment(file.filename or "document", content, file.content_type)
        try:
            replies = await runtime.conversation.upload(user, attachment, note)
        except PermissionError:
            raise HTTPException(403, f"user {user!r} may not upload documents") from None
        if replies is None:
            raise HTTPException(501, "document ingest is not installed in this build (knowledge base)")
        return JSONResponse({"replies": [r.text for r in replies if r.to in (None, user)]})

    @http.post("/api/messages", dependencies=[Depends(admin)])
    async def push_message(payload: dict[str, Any]) -> JSONResponse:
        user, text = payload.get("user"), payload.get("text")
        if not isinstance(user, str) or not isinstance(text, str) or not text:
            raise HTTPException(400, "body must be {\"user\": ORG_USER_ID, \"text\": TEXT}")
        ok = await runtime.delivery.push(user, Reply(text, markdown=bool(payload.get("markdown"))))
        return JSONResponse({"delivered": ok}, status_code=200 if ok else 409)

    @http.get("/api/events", dependencies=[Depends(admin)])
    async def event_kinds() -> dict[str, Any]:
        return {"kinds": sorted(app.api.events)}

    @http.post("/api/events/{kind}", dependencies=[Depends(admin)])
    async def post_event(kind: str, payload: dict[str, Any]) -> JSONResponse:
        handler = app.api.events.get(kind)
        if handler is None:
            return JSONResponse({"detail": f"event kind {kind!r} is not implemented yet; "
                                           f"known kinds: {sorted(app.api.events) or 'none'}"},
                                status_code=501)
        try:
            outcome = await handler(payload)
        except ValueError as exc:  # invalid event: nothing stored, the caller is told why
            return JSONResponse({"detail": str(exc)}, status_code=422)
        if isinstance(outcome, EventOutcome):
            for reply in outcome.replies:
                if reply.to is not None:
                    await runtime.delivery.push(reply.to, reply)
            outcome = outcome.body
        return JSONResponse({"result": outcome})

    return http


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def free_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: ``HttpServer.run`` handles SIGINT/SIGTERM so the
    channels are stopped cleanly before the process exits (uvicorn would re-raise the signal)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving the routes of ``runtime``; ``run`` for the CLI, ``start``/``stop`` for tests."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0):
        self.runtime = runtime
        self.host = host
        self.sock = free_socket(host, port)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_http_app(runtime), host=host, port=self.port, log_config=None,
                                access_log=False, lifespan="off")
        self.server = _Uvicorn(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the channels, then accept HTTP requests."""
        await self.runtime.start()
        self._task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            await self.runtime.stop()
            self._task.result()
            raise RuntimeError(f"HTTP server did not start on {self.url}")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None
        await self.runtime.stop()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM, then stop the HTTP server and the channels."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_exit)
        await self.start()
        try:
            assert self._task is not None
            await self._task
        finally:
            self.server.should_exit = True
            await self.runtime.stop()

    def _request_exit(self) -> None:
        log.info("shutting down")
        self.server.should_exit = True
