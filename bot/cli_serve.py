"""``salesbot serve``, ``salesbot users invite`` and ``salesbot bench channels``."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated

import typer

from bot.app import build_app
from bot.binding import UnknownUser, create_invite
from bot.channels.base import StartupError
from bot.cli_bench import bench_app
from bot.settings import Settings, SettingsError, load_settings

users_app = typer.Typer(help="管理聊天账号绑定", no_args_is_help=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"配置错误: {exc}", err=True)
        raise typer.Exit(2) from None


def serve(host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="监听端口")] = 8080) -> None:
    """启动 HTTP 服务和已配置的渠道（Telegram、企业微信、两者或都不启用）。"""
    from bot.logs import setup_logging
    from bot.server import HttpServer, build_runtime, secret_values

    settings = _settings()
    application = build_app(settings)
    setup_logging(json_lines=settings.log_json, secrets=secret_values(application))
    runtime = build_runtime(application)
    names = ", ".join(c.name for c in runtime.channels) or "无（只有 HTTP 接口）"
    try:
        server = HttpServer(runtime, host, port)
    except OSError as exc:
        typer.echo(f"无法监听 {host}:{port}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"salesbot serve: http://{host}:{server.port} 渠道：{names}", err=True)
    try:
        asyncio.run(server.run())
    except StartupError as exc:
        typer.echo(f"启动失败: {exc}", err=True)
        raise typer.Exit(2) from None


@users_app.command("invite")
def invite(user: Annotated[str, typer.Argument(help="组织文件里的用户 id")],
           hours: Annotated[int | None, typer.Option(help="有效小时数（默认见 SALESBOT_INVITE_TTL_HOURS）")]
           = None,
           as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """生成一次性绑定码：用户在 Telegram 或企业微信里发送「/bind 绑定码」完成绑定。"""
    settings = _settings()
    application = build_app(settings)
    try:
        result = create_invite(application.engine, user, timedelta(hours=hours or settings.invite_ttl_hours))
    except UnknownUser:
        typer.echo(f"未知用户 {user!r}：组织文件里没有这个 id。", err=True)
        raise typer.Exit(2) from None
    expires = result.expires_at.isoformat(timespec="minutes")
    if as_json:
        typer.echo(json.dumps({"user": user, "code": result.code, "expires_at": expires}))
    else:
        typer.echo(f"绑定码：{result.code}（{user}，有效至 {expires} UTC，只能用一次）\n"
                   f"请让对方在 Telegram 或企业微信里给机器人发送：/bind {result.code}")


def bench_channels(reps: Annotated[int, typer.Option(help="同时发消息的销售代表数")] = 200,
                   messages: Annotated[int, typer.Option(help="每人发几条")] = 5,
                   rounds: Annotated[int, typer.Option(help="重复几轮（取中位数）")] = 5,
                   profile: Annotated[bool, typer.Option(help="用 cProfile 统计时间分布")] = True) -> None:
    """消息吞吐：路由 + Telegram 渠道 + 本机假 Telegram 服务器，多名代表并发。"""
    from bot.bench import run_channel_bench

    typer.echo(run_channel_bench(reps=reps, messages=messages, rounds=rounds, profile=profile))


bench_app.command("channels")(bench_channels)


def bench_fanout(reps: Annotated[int, typer.Option(help="受影响的销售代表数（每人一条推送）")] = 10000,
                 rounds: Annotated[int, typer.Option(help="重复几轮（取中位数）")] = 1,
                 rate: Annotated[float, typer.Option(help="Telegram 发送限速（条/秒）")] = 30.0,
                 batch: Annotated[int, typer.Option(help="推送进程同时在途的条数")] = 60) -> None:
    """一条政策推送给 N 名代表：经本机假 Telegram 服务器（30 条/秒、每个会话 1 条/秒）。"""
    from bot.bench_fanout import run_fanout_bench

    typer.echo(run_fanout_bench(reps=reps, rounds=rounds, rate=rate, batch=batch))


bench_app.command("fanout")(bench_fanout)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``users``; ``bench channels`` joins the shared bench group."""
    app.command()(serve)
    app.add_typer(users_app, name="users")
