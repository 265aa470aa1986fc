"""Shared set-up for the channel tests: a seeded bot served over a real socket, next to the fakes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from bot.app import App, build_app
from bot.messages import Reply
from bot.router import Turn
from bot.server import HttpServer, build_runtime
from bot.settings import Settings, load_settings
from storage.seed import seed_org
from tests.conftest import EXAMPLES

TG_TOKEN = "700999:TEST-token"
# wechatpy's test vector (CHANNELS.md)
CB_TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_ID = "wx49f0ab532d5d035a"
WECOM_SECRET = "app-secret"
AGENT_ID = 1000002
ADMIN_TOKEN = "admin-token-0123456789"

ZHANGSAN_TG, WANGJING_TG = 700201, 700100


def settings_for(home: Path, db_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"home": home, "database_url": db_url or f"sqlite:///{home / 'salesbot.db'}",
                              "admin_tokens": [ADMIN_TOKEN], "_env_file": None}
    values.update(overrides)
    return load_settings(**values)


def telegram_settings(tg: Any) -> dict[str, Any]:
    return {"telegram_token": TG_TOKEN, "telegram_base_url": tg.base_url,
            "telegram_base_file_url": tg.base_file_url}


def wecom_settings(wc: Any) -> dict[str, Any]:
    return {"wecom_corp_id": CORP_ID, "wecom_secret": WECOM_SECRET, "wecom_agent_id": str(AGENT_ID),
            "wecom_token": CB_TOKEN, "wecom_aes_key": AES_KEY, "wecom_api_base_url": wc.api_base_url}


class Recorder:
    """Tiny stand-in handlers for features other issues deliver (knowledge answers, ingest, approvals)."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str, bytes, str]] = []  # (user, name, content, caption)
        self.presses: list[tuple[str, str]] = []

    def install(self, app: App) -> None:
        router = app.router

        async def answer(turn: Turn) -> Reply:
            return Reply(f"关于「{turn.args}」：集采中选结果自 2027 年 1 月 1 日起执行。[1]")

        async def ingest(turn: Turn) -> Reply:
            assert turn.msg.file is not None
            self.files.append((turn.user.id, turn.msg.file.name, turn.msg.file.content, turn.args))
            return Reply(f"已收到《{turn.msg.file.name}》，{len(turn.msg.file.content)} 字节，开始入库。")

        @router.button("approve")
        async def approve(turn: Turn) -> list[Reply]:
            self.presses.append((turn.user.id, turn.args))
            return [Reply(f"已批准 #{turn.args}\n申请人：张三，300 元补偿包"),
                    Reply(f"你的申请 #{turn.args} 已被批准。", to="zhangsan")]

        router.on_text(answer)
        router.on_file(ingest, roles=["admin"])


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, *, setup: Callable[[App], None] | None = None,
                      retry_window: float = 30.0, **runtime: Any) -> AsyncIterator[HttpServer]:
    app = build_app(settings)
    seed_org(app.engine, EXAMPLES / "org.yaml")
    if setup is not None:
        setup(app)
    server = HttpServer(build_runtime(app, retry_window=retry_window, telegram_poll_timeout=1, **runtime))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        app.engine.dispose()


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


def client(server: HttpServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=10)
