"""In-process fake servers for the chat platforms salesbot talks to.

Each fake is a small aiohttp application bound to ``127.0.0.1`` on a free port, in the
spirit of opsdroid's ``ExternalAPIMockServer``: point the real client library at
``server.base_url`` / ``server.api_base_url``, drive the conversation, then inspect what
the server recorded.

Usage::

    async with FakeTelegramServer(token="123:ABC").running() as tg:
        ...

    with FakeWeComServer(corp_id="wx1", secret="s").run_in_thread() as wc:
        ...  # synchronous clients (wechatpy uses requests)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Self

from aiohttp import web

__all__ = [
    "FakeHTTPServer",
    "FakeTelegramServer",
    "FakeWeComServer",
    "wecom_callback_request",
    "wecom_file_xml",
    "wecom_template_card_event_xml",
    "wecom_text_xml",
    "wecom_verify_request",
]


class FakeHTTPServer:
    """Base class: runs an aiohttp app on 127.0.0.1 and a free port.

    Subclasses implement :meth:`_build_app`. The server can run on the caller's event loop
    (:meth:`running`, :meth:`start`/:meth:`stop`) or on its own loop in a daemon thread
    (:meth:`run_in_thread`) for synchronous clients.
    """

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    # -- to implement -------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def _on_start(self) -> None:
        """Hook run on the server loop once the site is up (create loop-bound objects)."""

    async def _on_stop(self) -> None:
        """Hook run on the server loop before shutdown (wake long-running handlers)."""

    # -- addresses ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port actually bound (only while running)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle on the caller's loop -------------------------------------------------
    async def start(self) -> None:
        """Start serving on the running loop."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._closing = False
        self._loop = asyncio.get_running_loop()
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        await self._on_start()

    async def stop(self) -> None:
        """Stop serving; wakes pending long polls first so shutdown is quick."""
        if self._runner is None:
            return
        self._closing = True
        await self._on_stop()
        runner, self._runner = self._runner, None
        await runner.cleanup()
        self._port = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """``async with server.running() as s:`` serve for the duration of the block."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    # -- lifecycle in a background thread -----------------------------------------------
    @contextlib.contextmanager
    def run_in_thread(self, startup_timeout: float = 10.0) -> Iterator[Self]:
        """Serve from a daemon thread with its own event loop (for synchronous clients)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"{type(self).__name__}-loop", daemon=True)
        thread.start()
        self._thread = thread
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(startup_timeout)
            try:
                yield self
            finally:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(startup_timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(startup_timeout)
            loop.close()
            self._thread = None
            self._loop = None

    # -- helpers for subclasses -----------------------------------------------------------
    def _in_server_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the server loop: now if we are on it, else thread-safely."""
        loop = self._loop
        if loop is None or loop.is_closed():
            fn()
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    @staticmethod
    async def _poll_until(predicate: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(describe())
            await asyncio.sleep(0.005)

    @staticmethod
    def _poll_until_sync(predicate: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(describe())
            time.sleep(0.005)

    @staticmethod
    def _json(payload: Any, status: int = 200) -> web.Response:
        return web.json_response(payload, status=status)


from .telegram_api import FakeTelegramServer  # noqa: E402
from .wecom_api import (  # noqa: E402
    FakeWeComServer,
    wecom_callback_request,
    wecom_file_xml,
    wecom_template_card_event_xml,
    wecom_text_xml,
    wecom_verify_request,
)
