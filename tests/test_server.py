"""The HTTP server over a real socket, the admin API, and `salesbot serve` as a real process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.channels.telegram import markdown_v2
from bot.delivery import split_text
from bot.logs import JsonFormatter, Redactor
from tests.channel_support import (
    ADMIN_TOKEN,
    AES_KEY,
    TG_TOKEN,
    Recorder,
    client,
    running_bot,
    settings_for,
    telegram_settings,
    wecom_settings,
)
from tests.conftest import ROOT
from tests.fakes.telegram_api import FakeTelegramServer
from tests.fakes.wecom_api import FakeWeComServer

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SERVE = [sys.executable, "-m", "bot.cli", "serve", "--port", "0"]
Fakes = tuple[FakeTelegramServer, FakeWeComServer]


async def test_health_metrics_and_admin_api_over_a_socket(tmp_path: Path) -> None:
    rec = Recorder()

    def setup(app):
        rec.install(app)

        @app.api.event("signal")
        async def on_signal(payload):
            return {"seen": payload["customer"]}

    async with running_bot(settings_for(tmp_path), setup=setup) as server, client(server) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok", "channels": {}}
        assert (await http.get("/wecom/callback")).status_code == 404  # WeCom not configured
        doc = {"file": ("通知.txt", "第一条 自 2027 年起施行。".encode(), "text/plain")}
        form = {"user": "liumin"}
        assert (await http.post("/api/documents", files=doc, data=form)).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert (await http.post("/api/documents", files=doc, data=form, headers=bad)).status_code == 401

        form = {"user": "liumin", "note": "政策"}
        resp = await http.post("/api/documents", files=doc, data=form, headers=AUTH)
        assert resp.status_code == 200 and "已收到《通知.txt》" in resp.json()["replies"][0]
        assert rec.files == [("liumin", "通知.txt", "第一条 自 2027 年起施行。".encode(), "政策")]
        resp = await http.post("/api/documents", files=doc, data={"user": "zhangsan"}, headers=AUTH)
        assert resp.status_code == 403 and len(rec.files) == 1

        assert (await http.post("/api/events/order", json={}, headers=AUTH)).status_code == 501
        resp = await http.post("/api/events/signal", json={"customer": "bj-xiehe"}, headers=AUTH)
        assert resp.json() == {"result": {"seen": "bj-xiehe"}}
        kinds = (await http.get("/api/events", headers=AUTH)).json()
        assert kinds == {"kinds": ["journey", "opinion", "signal", "tags"]}
        resp = await http.post("/api/messages", json={"user": "zhangsan", "text": "hi"}, headers=AUTH)
        assert resp.status_code == 409  # no channel reaches him in this set-up

        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'salesbot_messages_in_total{channel="api"} 1.0' in metrics.text
        assert "# TYPE salesbot_reply_latency_seconds histogram" in metrics.text


async def test_admin_api_without_tokens_is_disabled_and_uploads_reach_the_knowledge_base(
        tmp_path: Path) -> None:
    async with running_bot(settings_for(tmp_path, admin_tokens=[])) as server, client(server) as http:
        resp = await http.post("/api/events/x", json={}, headers=AUTH)
        assert resp.status_code == 503 and "SALESBOT_ADMIN_TOKENS" in resp.text
    async with running_bot(settings_for(tmp_path)) as server, client(server) as http:
        doc = {"file": ("a.txt", b"", "text/plain")}
        resp = await http.post("/api/documents", files=doc, data={"user": "liumin"}, headers=AUTH)
        assert resp.status_code == 200 and resp.json()["replies"] == ["文件是空的，没有可以入库的文字。"]


# -- salesbot serve as a process ------------------------------------------------------------------

def _env(home: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
    env.update({"SALESBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", "SALESBOT_LOG_JSON": "true"})
    env.update({f"SALESBOT_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with FakeTelegramServer(token=TG_TOKEN).run_in_thread() as tg, \
            FakeWeComServer("wx49f0ab532d5d035a", "app-secret").run_in_thread() as wc:
        yield tg, wc


def _start(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(SERVE, env=env, cwd=cwd,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if line.startswith("salesbot serve: "):
            return proc, line.split()[2]
    proc.kill()
    raise AssertionError(f"serve did not start: {proc.stderr.read()}")


def _healthz(url: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url + "/healthz", timeout=2).json()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("combo", ["none", "telegram", "wecom", "both"])
def test_serve_starts_with_each_channel_combination(tmp_path: Path, combo: str, fakes: Fakes) -> None:
    tg, wc = fakes
    values: dict[str, str] = {}
    if combo in ("telegram", "both"):
        values.update({k: str(v) for k, v in telegram_settings(tg).items()})
    if combo in ("wecom", "both"):
        values.update({k: str(v) for k, v in wecom_settings(wc).items()})
    proc, url = _start(_env(tmp_path, **values), tmp_path)
    try:
        health = _healthz(url)
        expected = {"none": {}, "telegram": {"telegram": "polling"}, "wecom": {"wecom": "callback"},
                    "both": {"telegram": "polling", "wecom": "callback"}}[combo]
        assert health == {"status": "ok", "channels": expected}
        if "telegram" in expected:
            tg.wait_for_sync("getUpdates")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for secret in (TG_TOKEN, AES_KEY, "app-secret"):
        assert secret not in err  # logs never carry secrets
    assert all(json.loads(line) for line in err.splitlines() if line.startswith("{"))


@pytest.mark.parametrize(("values", "named"), [
    ({"wecom_corp_id": "wx1", "wecom_secret": "s"}, "SALESBOT_WECOM_AGENT_ID"),
    ({"wecom_corp_id": "wx1", "wecom_secret": "s", "wecom_agent_id": "1000002", "wecom_token": "t",
      "wecom_aes_key": AES_KEY[:-1]}, "SALESBOT_WECOM_AES_KEY"),
    ({"telegram_webhook_secret": "secret-123"}, "SALESBOT_TELEGRAM_TOKEN"),
    ({"telegram_token": "not a token"}, "SALESBOT_TELEGRAM_TOKEN"),
])
def test_serve_refuses_to_start_when_misconfigured(tmp_path: Path, values: dict[str, str],
                                                   named: str) -> None:
    result = subprocess.run(SERVE, env=_env(tmp_path, **values), cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and named in result.stderr


def test_serve_refuses_a_token_telegram_rejects(tmp_path: Path, fakes: Fakes) -> None:
    tg, wc = fakes
    values = {k: str(v) for k, v in telegram_settings(tg).items()} | {"telegram_token": "1:wrong"}
    values |= {k: str(v) for k, v in wecom_settings(wc).items()} | {"wecom_secret": "wrong-secret"}
    result = subprocess.run(SERVE, env=_env(tmp_path, **values), cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "SALESBOT_TELEGRAM_TOKEN" in result.stderr


def test_users_invite_prints_a_code(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([sys.executable, "-m", "bot.cli", "seed", str(ROOT / "examples/org.yaml")], env=env,
                   cwd=tmp_path, check=True, capture_output=True, timeout=60)
    out = subprocess.run([sys.executable, "-m", "bot.cli", "users", "invite", "liumin", "--json"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    data = json.loads(out.stdout)
    assert data["user"] == "liumin" and len(data["code"]) == 9
    bad = subprocess.run([sys.executable, "-m", "bot.cli", "users", "invite", "nobody"], env=env,
                         cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nobody" in bad.stderr


# -- units ------------------------------------------------------------------------------------------

def test_split_text_prefers_sentence_boundaries_and_respects_byte_limits() -> None:
    text = "第一句话。" * 10 + "\n\n" + "Second sentence. " * 5
    parts = split_text(text, 30, lambda s: len(s.encode()))
    assert all(len(p.encode()) <= 30 for p in parts)
    assert "".join(parts).replace(" ", "") == text.replace("\n", "").replace(" ", "")
    assert all(p.endswith(("。", ".")) for p in parts)
    assert split_text("短", 10) == ["短"]
    assert split_text("无标点" * 10, 7) == ["无标点无标点无", "标点无标点无标", "点无标点无标点",
                                           "无标点无标点无", "标点"]


def test_markdown_v2_keeps_our_markup_and_escapes_the_rest() -> None:
    assert markdown_v2("**结论**：价格下调 5.2% (见[通知](https://a.cn/x_1))") == (
        "*结论*：价格下调 5\\.2% \\(见[通知](https://a.cn/x_1)\\)")
    assert markdown_v2("# 标题\n- a_b") == "*标题*\n\\- a\\_b"


def test_logs_are_json_lines_without_secrets() -> None:
    formatter = Redactor(JsonFormatter(), ["700999:TEST-token"])
    record = logging.makeLogRecord({"msg": "GET https://x/bot700999:TEST-token/getMe", "levelname": "INFO",
                                    "name": "httpx", "channel": "telegram"})
    line = formatter.format(record)
    assert json.loads(line)["channel"] == "telegram" and "TEST-token" not in line and "***" in line
