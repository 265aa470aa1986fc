"""The ``salesbot`` command line (typer)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot import cli_rules, texts
from bot.app import App, build_app
from bot.channels.terminal import TerminalChannel
from bot.cli_bench import bench_app
from bot.cli_kb import ingest_examples
from bot.cli_kb import register as register_kb_cli
from bot.cli_push import register as register_push_cli
from bot.cli_serve import register as register_serve_commands
from bot.cli_signals import register_cli as register_signals_cli
from bot.settings import SettingsError, load_settings
from storage.seed import seed_org
from storage.yamlfile import FileInvalid

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_USER = "zhangsan"

app = typer.Typer(help="salesbot: 销售助手（知识库问答、政策话术推送、权限流与审批）", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _app() -> App:
    try:
        return build_app(load_settings())
    except SettingsError as exc:
        typer.echo(f"配置错误: {exc}", err=True)
        raise typer.Exit(2) from None


def _seed(application: App, path: Path) -> None:
    try:
        report = seed_org(application.engine, path)
    except FileInvalid as exc:
        typer.echo(f"组织文件被拒绝，数据库未做任何改动：\n{exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"已导入 {path}: {report.summary()}")


@app.command()
def seed(org_file: Annotated[Path, typer.Argument(help="组织 YAML 文件")]) -> None:
    """导入组织文件（用户、产品、客户、商机）；可重复执行，只更新不重复。"""
    _seed(_app(), org_file)


def _chat(application: App, user_id: str) -> None:
    if application.directory.get(user_id) is None:
        known = ", ".join(application.directory.all_ids()) or "（空，请先 salesbot seed）"
        typer.echo(texts.UNKNOWN_USER_CLI.format(user=user_id, known=known), err=True)
        raise typer.Exit(2)
    channel = TerminalChannel(application.router, application.directory, user_id)
    asyncio.run(channel.run())


@app.command()
def chat(user: Annotated[str, typer.Option("--as", help="以哪个用户的身份对话（组织文件里的 id）")]) -> None:
    """在终端里对话；标准输入不是终端时逐行读取消息并打印回复。"""
    _chat(_app(), user)


@app.command()
def demo(user: Annotated[str, typer.Option("--as", help="演示用户")] = DEMO_USER) -> None:
    """演示：导入示例组织，然后以示例销售代表的身份在终端里对话。"""
    application = _app()
    _seed(application, EXAMPLES / "org.yaml")
    cli_rules.walkthrough(application)
    typer.echo(ingest_examples(application))
    _chat(application, user)


cli_rules.register(app, _app)
register_signals_cli(app, _app)
register_serve_commands(app)  # serve, users invite, bench channels (bot/cli_serve.py)
register_kb_cli(app, _app)
register_push_cli(app, _app)
app.add_typer(bench_app, name="bench")


if __name__ == "__main__":
    app()
