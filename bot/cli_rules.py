"""CLI groups for the permission flow: ``rules check|simulate``, ``tags set``, ``approvals due``,
``bench permissions``, and the scripted part of ``salesbot demo``."""

from __future__ import annotations

import asyncio
import json
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from bot.channels.terminal import TerminalChannel
from bot.handlers_actions import EXAMPLE_RULES, notice_replies
from bot.messages import Incoming
from skills.actions import fmt_limit
from skills.registry import SKILLS
from skills.rules import load_rules
from skills.simulate import parse_assignment, simulate
from storage.db import session_scope
from storage.lookup import find_customer
from storage.types import utcnow
from storage.yamlfile import FileInvalid

rules_app = typer.Typer(help="权限规则：校验与试算", no_args_is_help=True)
tags_app = typer.Typer(help="数据标签：修改客户或区域的标签（规则随之重新求值）", no_args_is_help=True)
approvals_app = typer.Typer(help="审批：处理超时（升级、过期）", no_args_is_help=True)
bench_app = typer.Typer(help="性能基准", no_args_is_help=True)

AppFactory = Callable[[], object]
_factory: AppFactory | None = None


def register(app: typer.Typer, factory: AppFactory) -> None:
    """Wire the groups into the main CLI; ``factory`` builds the App (settings, engine, router)."""
    global _factory
    _factory = factory
    app.add_typer(rules_app, name="rules")
    app.add_typer(tags_app, name="tags")
    app.add_typer(approvals_app, name="approvals")
    app.add_typer(bench_app, name="bench")


def _app():  # type: ignore[no-untyped-def]
    assert _factory is not None
    return _factory()


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(help="规则 YAML 文件")]) -> None:
    """校验规则文件（语法、未知标签和能力、时长）；有问题时逐条列出 文件:行: 规则: 原因，退出码 1。"""
    try:
        rules = load_rules(file)
    except FileInvalid as exc:
        typer.echo(f"规则文件被拒绝（正在生效的规则不受影响）：\n{exc}", err=True)
        raise typer.Exit(1) from None
    grants = sum(1 for r in rules.rules if not r.is_deny)
    typer.echo(
        f"{file}: 通过。{len(rules.rules)} 条规则（{grants} 条授权，{len(rules.rules) - grants} 条禁止），"
        f"{len(rules.caps)} 个硬上限，{len(rules.tag_types)} 个标签。"
    )


@rules_app.command("simulate")
def rules_simulate(
    customer: Annotated[str, typer.Option("--customer", help="客户 id、名称或简称")],
    user: Annotated[str, typer.Option("--as", help="以谁的身份")],
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", help="假设的标签值，如 nps=-5 或 region.opinion_level=orange（可重复）"),
    ] = None,
    file: Annotated[Path | None, typer.Option("--rules", help="规则文件；默认为正在使用的规则")] = None,
) -> None:
    """试算：在假设的标签值下哪些规则触发，以及该用户对每个技能的权限（不写数据库）。"""
    application = _app()
    try:
        rules = load_rules(file) if file else application.actions.permissions.rules
        sim = simulate(
            application.engine,
            application.actions.permissions,
            rules,
            customer,
            user,
            assignments or [],
            utcnow(),
        )
    except (FileInvalid, LookupError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"客户 {sim.customer.name}（{sim.customer.id}），以 {sim.user.name}（{sim.user.id}）的身份：")
    for rule_id, kind, state in sim.fired:
        typer.echo(f"  规则 {rule_id} [{kind}]: {state}")
    typer.echo("权限：")
    for name, d in sim.decisions.items():
        skill = SKILLS[name]
        if d.reason == "deny_rule":
            what = "禁止（" + "、".join(r for r, _ in d.denied_by) + "）"
        else:
            free = [s for s in d.sources if s.approval_free]
            best = max(free, key=lambda s: (s.limit is None, s.limit or 0)) if free else None
            if best is None:
                what = "无免审批权限，需审批"
            else:
                what = (
                    "免审批 "
                    + (fmt_limit(skill.capability, best.limit) or "可办理")
                    + f"（来源 {best.name}）"
                )
        cap = application.actions.permissions.rules.caps.get(skill.capability)
        typer.echo(
            f"  {skill.title}: {what}" + (f"；硬上限 {fmt_limit(skill.capability, cap)}" if cap else "")
        )


@tags_app.command("set")
def tags_set(
    assignments: Annotated[list[str], typer.Argument(help="标签=值，如 nps=-5；region.opinion_level=orange")],
    customer: Annotated[str | None, typer.Option("--customer", help="客户 id、名称或简称")] = None,
    region: Annotated[str | None, typer.Option("--region", help="区域，如 江苏")] = None,
) -> None:
    """修改标签（记入标签历史），立即重新求值规则，打印开放或收回的授权。"""
    application = _app()
    if (customer is None) == (region is None):
        typer.echo("请指定 --customer 或 --region 之一", err=True)
        raise typer.Exit(2)
    values = {}
    try:
        for text in assignments:
            _, tag, value = parse_assignment(text)
            values[tag] = value
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    service = application.actions
    with session_scope(application.engine) as session:
        if customer is not None:
            found = find_customer(session, customer)
            if found is None:
                typer.echo(f"没有找到客户 {customer!r}", err=True)
                raise typer.Exit(1)
            subject = ("customer", found.id)
        else:
            subject = ("region", region)
        changes = service.permissions.set_tags(
            session, *subject, _json_safe(values), source="cli", now=utcnow(), actor="operator"
        )
        notices = service.grant_notices(session, changes)
    typer.echo(f"已更新 {subject[0]}:{subject[1]} 的标签：{values}")
    for n in notices:
        typer.echo(f"→ 发给 {n.to}：{n.text}")


def _json_safe(values: dict) -> dict:
    from decimal import Decimal

    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


@approvals_app.command("due")
def approvals_due(
    at: Annotated[str | None, typer.Option("--at", help="按这个时刻处理（ISO 时间，测试用）")] = None,
) -> None:
    """处理到期的审批：超时的升级一次，再超时就过期；打印发给各人的通知。服务器的定时任务调用同一个函数。"""
    application = _app()
    now = datetime.fromisoformat(at).astimezone(UTC) if at else utcnow()
    notices = application.actions.process_due_approvals(now)
    for n in notices:
        typer.echo(f"→ 发给 {n.to}：{n.text}")
    typer.echo(f"处理完毕：{len(notices)} 条通知。")


@bench_app.command("permissions")
def bench_permissions(
    rules: Annotated[int, typer.Option(help="规则条数")] = 50,
    customers: Annotated[int, typer.Option(help="客户数")] = 10_000,
    repeats: Annotated[int, typer.Option(help="重复次数（取中位数）")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """权限引擎基准：每秒决策数，以及批量改标签后全部规则重新求值的耗时；与纯 Python 谓词对比。"""
    from skills.bench import run, run_db

    result = run(rules, customers, repeats)
    result["database"] = run_db(rules, min(customers, 1000))
    result["machine"] = f"{platform.machine()}, {_cpus()} CPU, Python {sys.version.split()[0]}"
    result["date"] = utcnow().strftime("%Y-%m-%d")
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    d, b = result["decisions"], result["bulk"]
    typer.echo(
        f"{rules} 条规则 × {customers} 个客户，重复 {repeats} 次（中位数 [最小–最大]），{result['machine']}"
    )
    typer.echo(f"两种实现结果不一致的次数: {result['mismatches']}")
    for label, key in (("决策/秒", "decisions"), ("批量重算", "bulk")):
        for impl in ("engine", "python"):
            r = result[key][impl]
            typer.echo(
                f"  {label} {impl:6}: {r['median_rate']:,.0f}/s [{r['min_rate']:,.0f}–{r['max_rate']:,.0f}]"
                f"  {r['median_s']:.3f}s [{r['min_s']:.3f}–{r['max_s']:.3f}] for {r['count']:,}"
            )
    typer.echo(
        f"  比值 python/engine: 决策 {d['python']['median_rate'] / d['engine']['median_rate']:.2f}x，"
        f"批量 {b['engine']['median_s'] / b['python']['median_s']:.2f}x"
    )
    db = result["database"]
    typer.echo(
        f"  经数据库（SQLite，{db['customers']} 个客户，50 个代表）: 决策 {db['decisions_per_s']:,.0f}/s；"
        f"为全部客户开放授权 {db['sync_seconds']:.1f}s"
    )


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


# the scripted part of `salesbot demo` ------------------------------------------------------
WALKTHROUGH: list[tuple[str, str]] = [
    ("zhangsan", "/authority 北医三院"),
    ("zhangsan", "给北医三院发300元补偿，因为交付延迟"),
    ("zhangsan", "/comp 北医三院 800 设备故障多次返修"),
    ("wangjing", "@press 1"),
    ("lisi", "/price 积水潭 -12 竞品报价更低"),
    ("@region", "江苏 opinion_level=orange"),
    ("chenchen", "/repair 鼓楼 CT球管"),
]


def walkthrough(application, out=None) -> None:  # type: ignore[no-untyped-def]
    """Walk through the example rules with real messages: one allowed and one approved request, and
    each example rule in action. Prints like the terminal chat (cards to others shown with →)."""
    out = out or sys.stdout
    directory = application.directory
    names = {
        u: (directory.get(u).name if directory.get(u) else u) for u, _ in WALKTHROUGH if not u.startswith("@")
    }
    out.write("=== 演示：权限流（规则 examples/rules.yaml）===\n")
    with session_scope(application.engine) as session:
        application.actions.permissions.sync_all(session, utcnow(), actor="demo")
    last_buttons: dict[str, list[str]] = {}

    async def run() -> None:
        for who, text in WALKTHROUGH:
            if who == "@region":
                region, assignment = text.split()
                out.write(f"\n[运营] {region} 区域舆情等级升为橙色（{assignment}）\n")
                _, tag, value = parse_assignment("region." + assignment)
                with session_scope(application.engine) as session:
                    changes = application.actions.permissions.set_tags(
                        session, "region", region, {tag: value}, source="demo", now=utcnow(), actor="operator"
                    )
                    notices = application.actions.grant_notices(session, changes)
                channel = TerminalChannel(application.router, directory, "", stdout=out)
                seen = set()
                for reply in notice_replies(notices):
                    if reply.to not in seen:  # one line per rep is enough for the demo
                        seen.add(reply.to)
                        channel.show(reply)
                continue
            channel = TerminalChannel(application.router, directory, who, stdout=out)
            if text.startswith("@press"):
                payload = last_buttons[who][int(text.split()[1]) - 1]
                out.write(f"\n{names[who]}> [按下「批准」按钮 {payload}]\n")
                msg = Incoming("terminal", who, button=payload)
            else:
                out.write(f"\n{names[who]}> {text}\n")
                msg = Incoming("terminal", who, text=text)
            for reply in await application.router.handle(msg):
                channel.show(reply)
                if reply.to and reply.buttons:
                    last_buttons[reply.to] = [b.payload for row in reply.buttons for b in row]
        out.write("\n=== 演示结束。下面可以继续以 张三 的身份对话（/help 查看命令）===\n")

    asyncio.run(run())


def rules_path_hint(application) -> str:  # type: ignore[no-untyped-def]
    return str(application.settings.rules_file or EXAMPLE_RULES)


def customer_name(application, query: str) -> str:  # type: ignore[no-untyped-def]
    with Session(application.engine) as session:
        c = find_customer(session, query)
        return c.name if c else query
