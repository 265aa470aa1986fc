"""``salesbot journey ...``, ``salesbot opportunities health`` and ``salesbot bench journey``."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from bot.app import App
from bot.cli_bench import bench_app
from bot.signals_config import health_config, journey_file, journey_rules
from skills.signals.health import recompute_health
from skills.signals.heatmap import format_table, heatmap_counts, render_png
from skills.signals.journey import JourneyRules, evaluate_due, load_journey_rules
from storage.yamlfile import FileInvalid

journey_app = typer.Typer(help="客户旅程断点：检查规则、导入事件、热力图", no_args_is_help=True)
opportunities_app = typer.Typer(help="商机：健康度", no_args_is_help=True)


def _when(value: str | None) -> datetime:
    """'2026-12-05' or an ISO time; naive means China time. None = now."""
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC) - timedelta(hours=8)
    return parsed.astimezone(UTC)


def _span(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def register_cli(app: typer.Typer, make_app: Callable[[], App]) -> None:
    """Add the signals command groups to the main ``salesbot`` app."""
    app.add_typer(journey_app, name="journey")
    app.add_typer(opportunities_app, name="opportunities")

    def rules_or_exit(application: App, path: Path | None = None) -> JourneyRules:
        try:
            return load_journey_rules(path) if path else journey_rules(application.settings)
        except FileInvalid as exc:
            typer.echo(f"断点规则文件被拒绝：\n{exc}", err=True)
            raise typer.Exit(1) from None

    @journey_app.command("check")
    def journey_check(
        path: Annotated[Path | None, typer.Argument(help="规则文件；默认为当前配置的文件")] = None,
    ) -> None:
        """检查断点规则文件（CEL 语法、字段、时长），列出规则。"""
        application = make_app()
        rules = rules_or_exit(application, path)
        typer.echo(f"{path or journey_file(application.settings)}: {len(rules.rules)} 条规则")
        for r in rules.rules:
            window = f"，{_span(r.within)} 内无「{r.unless_src}」" if r.within else ""
            typer.echo(f"- {r.id}（{r.name}，{r.role}）：{r.when_src}{window}")

    @journey_app.command("ingest")
    def journey_ingest(
        path: Annotated[Path, typer.Argument(help="JSON Lines 文件，每行一个事件")],
        source: Annotated[str, typer.Option(help="事件来源，如 web / app / store_pad")] = "file",
        now: Annotated[str | None, typer.Option(help="当作现在的时间（ISO；无时区=北京时间）")] = None,
    ) -> None:
        """导入触点事件（按 event_id 去重），并判定已到期的断点窗口。"""
        from skills.signals.events import ingest_journey_events

        application = make_app()
        rules = rules_or_exit(application)
        events = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        at = _when(now)
        s = application.settings
        report = ingest_journey_events(
            application.engine, events, source=source, rules=rules, now=at, repeat_days=s.journey_repeat_days
        )
        due = evaluate_due(
            application.engine,
            rules,
            at,
            lateness=timedelta(seconds=s.journey_lateness_seconds),
            repeat_days=s.journey_repeat_days,
        )
        typer.echo(
            f"新增 {report.accepted}，重复 {report.duplicates}，拒收 {len(report.rejected)}，"
            f"新断点 {len(report.outcome.breakpoints) + len(due.breakpoints)}"
        )
        for index, reason in report.rejected:
            typer.echo(f"  拒收 #{index}: {reason}", err=True)
        for n in report.notices + due.notices:
            typer.echo(f"  → {n.to}: {n.text}")

    @journey_app.command("heatmap")
    def journey_heatmap(
        since: Annotated[str | None, typer.Option(help="起始日期（含）")] = None,
        until: Annotated[str | None, typer.Option(help="结束日期（不含）")] = None,
        png: Annotated[
            Path | None, typer.Option(help="PNG 路径；默认 $SALESBOT_HOME/journey-heatmap.png")
        ] = None,
    ) -> None:
        """按「断点 × 区域」统计断点次数，打印表格并输出 PNG。"""
        application = make_app()
        try:
            names = {r.id: r.name for r in journey_rules(application.settings).rules}
        except FileInvalid:
            names = {}
        with Session(application.engine) as session:
            h = heatmap_counts(session, _when(since) if since else None, _when(until) if until else None)
        if not h.rules:
            typer.echo("还没有断点记录。")
            return
        typer.echo(format_table(h, names))
        target = png or application.settings.home / "journey-heatmap.png"
        legend = render_png(h, names, target)
        typer.echo(f"PNG: {target}")
        if legend:
            typer.echo(
                "（未找到中文字体，图中用代号：" + "，".join(f"{k}={v}" for k, v in legend.items()) + "）"
            )

    @opportunities_app.command("health")
    def opportunities_health(
        rep: Annotated[str | None, typer.Option("--rep", help="只看这个销售代表（id）")] = None,
        now: Annotated[str | None, typer.Option(help="当作现在的时间（ISO；无时区=北京时间）")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
    ) -> None:
        """计算并列出在跟商机的健康度、变化和原因（最差的在前）。"""
        application = make_app()
        config = health_config(application.settings)
        rows = [
            h for h in recompute_health(application.engine, _when(now), config) if rep in (None, h.owner_id)
        ]
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "opportunity": h.opportunity_id,
                            "customer": h.customer_id,
                            "rep": h.owner_id,
                            "stage": h.stage,
                            "score": h.score,
                            "previous": h.previous,
                            "delta": h.delta,
                            "decaying": h.decaying(config),
                            "reasons": h.reasons,
                            "next_step": h.next_step(),
                        }
                        for h in rows
                    ],
                    ensure_ascii=False,
                    indent=1,
                )
            )
            return
        if not rows:
            typer.echo("没有在跟的商机。")
            return
        for h in rows:
            flag = "▼" if h.decaying(config) else " "
            typer.echo(
                f"{flag} {h.opportunity_id}  {h.owner_id:<9} {h.customer_name}｜{h.stage}｜{h.explain()}"
            )

    @bench_app.command("journey")
    def bench_journey_cmd(
        events: Annotated[int, typer.Option(help="每轮事件数")] = 20000,
        opportunities: Annotated[int, typer.Option(help="健康度重算的商机数")] = 10000,
        repeat: Annotated[int, typer.Option(help="轮数")] = 3,
    ) -> None:
        """旅程事件导入速度（20 条断点规则，对比纯 Python 条件）和 1 万商机健康度重算时间（对比只读写）。"""
        from skills.signals.bench import bench_health, bench_journey

        typer.echo(
            f"# salesbot bench journey --events {events} --opportunities {opportunities} --repeat {repeat}"
        )
        typer.echo(
            f"# {date.today()}, {platform.node()}, {platform.processor() or platform.machine()}, "
            f"Python {sys.version.split()[0]}"
        )
        typer.echo(bench_journey(events, repeat).line())
        typer.echo(bench_health(opportunities, repeat).line())
