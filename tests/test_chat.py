"""The conversation core through the terminal channel and the real ``salesbot`` command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.commands import register_basic
from bot.identity import Directory
from bot.messages import Incoming
from bot.router import Router
from storage.seed import seed_org
from tests.conftest import EXAMPLES, ROOT


@pytest.fixture
def router(sqlite_engine: Engine) -> Router:
    seed_org(sqlite_engine, EXAMPLES / "org.yaml")
    r = Router(Directory(sqlite_engine))
    register_basic(r)
    return r


async def say(router: Router, text: str, account: str = "zhangsan", channel: str = "terminal") -> str:
    replies = await router.handle(Incoming(channel, account, text=text))
    return "\n".join(r.text for r in replies)


async def test_help_lists_what_the_role_can_do(router: Router) -> None:
    @router.command("pending", "查看待我审批的申请", roles=["manager"])
    async def pending(turn):  # a manager-only command registered by another package
        return None

    rep_help = await say(router, "/help")
    manager_help = await say(router, "/help", account="wangjing")
    assert "作为销售代表" in rep_help and "/whoami" in rep_help
    assert "/pending" not in rep_help
    assert "作为销售经理" in manager_help and "/pending — 查看待我审批的申请" in manager_help
    assert "只对销售经理开放" in await say(router, "/pending")


async def test_unknown_account_is_told_how_to_register_and_nothing_else(router: Router) -> None:
    reply = await say(router, "/help", account="999999", channel="telegram")
    assert "/bind" in reply and "/whoami" not in reply
    assert "/bind" in await say(router, "集采啥时候执行", account="nobody", channel="wecom")


async def test_channel_accounts_resolve_to_org_users(router: Router) -> None:
    assert "张三" in await say(router, "/whoami", account="700201", channel="telegram")
    assert "陈晨" in await say(router, "/whoami", account="ChenChen", channel="wecom")
    assert "上级：周建华" in await say(router, "/whoami", account="WangJing", channel="wecom")


async def test_unknown_command_and_unknown_button(router: Router) -> None:
    assert "没有「/fly」这个命令" in await say(router, "/fly")
    replies = await router.handle(Incoming("terminal", "zhangsan", button="nonsense:1"))
    assert "按钮已失效" in replies[0].text


async def test_a_failing_handler_becomes_a_polite_reply(router: Router) -> None:
    @router.command("boom", "测试")
    async def boom(turn):
        raise RuntimeError("db down")

    assert "出错了" in await say(router, "/boom")


def run_cli(args: list[str], stdin: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SALESBOT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("SALESBOT_") or k == "SALESBOT_HOME"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_demo_prints_help_for_the_example_rep(tmp_path: Path) -> None:
    result = run_cli(["demo"], "/help\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "张三，你好。作为销售代表" in result.stdout
    assert "/help — 查看你可以做什么" in result.stdout


def test_chat_reads_one_message_per_line_and_unknown_user_exits_2(tmp_path: Path) -> None:
    assert run_cli(["seed", str(EXAMPLES / "org.yaml")], "", tmp_path).returncode == 0
    result = run_cli(["chat", "--as", "chenchen"], "/whoami\n\n/whoami\n", tmp_path)
    assert result.stdout.count("你是 陈晨（chenchen）") == 2
    unknown = run_cli(["chat", "--as", "nobody"], "/help\n", tmp_path)
    assert unknown.returncode == 2
    assert "未知用户 'nobody'" in unknown.stderr and "zhangsan" in unknown.stderr


def test_broken_org_file_on_the_command_line(tmp_path: Path) -> None:
    broken = tmp_path / "org.yaml"
    broken.write_text("users:\n  - id: a\n    name: A\n", encoding="utf-8")
    result = run_cli(["seed", str(broken)], "", tmp_path)
    assert result.returncode == 1
    assert f"{broken}:2: users[0].role: 缺少必填字段" in result.stderr


async def test_terminal_buttons_are_pressed_by_number(router: Router) -> None:
    from bot.channels.terminal import TerminalChannel
    from bot.messages import Button, Reply
    from bot.router import Turn

    @router.command("card", "测试")
    async def card(turn: Turn) -> Reply:
        return Reply("选一个", buttons=((Button("批准", "pick:yes"), Button("拒绝", "pick:no")),))

    @router.button("pick")
    async def pick(turn: Turn) -> Reply:
        return Reply(f"你选了 {turn.args}")

    out = io.StringIO()
    channel = TerminalChannel(router, router.directory, "zhangsan", io.StringIO("/card\n2\n"), out)
    await channel.run()
    assert "[1] 批准  [2] 拒绝" in out.getvalue()
    assert "你选了 no" in out.getvalue()
