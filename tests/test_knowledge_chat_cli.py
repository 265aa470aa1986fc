"""The knowledge base from the chat (questions, admin uploads) and from the ``salesbot`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.commands import register_basic
from bot.handlers_knowledge import register_knowledge
from bot.identity import Directory
from bot.messages import Attachment, Incoming
from bot.router import Router
from knowledge.service import Knowledge, KnowledgeConfig
from storage.seed import seed_org
from tests.conftest import EXAMPLES, ROOT
from tests.documents import blank_pdf, text_pdf

ADMIN = "liumin"


@pytest.fixture
def router(sqlite_engine: Engine, embedder, tmp_path: Path) -> Router:
    seed_org(sqlite_engine, EXAMPLES / "org.yaml")
    kb = Knowledge.build(sqlite_engine, KnowledgeConfig(home=tmp_path), embedder=embedder)
    r = Router(Directory(sqlite_engine))
    register_basic(r)
    register_knowledge(r, lambda: kb)
    return r


async def say(
    router: Router, text: str = "", account: str = "zhangsan", file: Attachment | None = None
) -> str:
    replies = await router.handle(Incoming("terminal", account, text=text, file=file))
    return "\n".join(r.text for r in replies)


async def test_admin_uploads_a_pdf_and_a_rep_asks_about_it(router: Router) -> None:
    pdf = text_pdf(
        [
            ["江苏省跟台服务管理办法", "第一条 跟台人员不得上台操作。"],
            ["第二条 跟台人员每年至少参加1次培训。"],
        ],
        title="江苏省跟台服务管理办法",
    )
    reply = await say(
        router, "policy", account=ADMIN, file=Attachment("跟台办法.pdf", pdf, "application/pdf")
    )
    assert "已入库《江苏省跟台服务管理办法》" in reply and "2 个段落" in reply
    answer = await say(router, "跟台的一年要培训几次")
    assert "每年至少参加1次培训" in answer and "[1] 《江苏省跟台服务管理办法》第二条" in answer
    assert "江苏省跟台服务管理办法" in await say(router, "/docs")


async def test_upload_errors_and_permissions(router: Router) -> None:
    scanned = Attachment("扫描件.pdf", blank_pdf(), "application/pdf")
    assert "没有文字层" in await say(router, account=ADMIN, file=scanned)
    assert "只有知识管理员可以上传文档" in await say(router, file=scanned)
    assert "知识库还是空的" in await say(router, "集采啥时候执行")


async def test_follow_up_in_chat_keeps_the_context(router: Router) -> None:
    doc = "# 挂网通知\n\n第一条 北京挂网每月10日前申报。\n\n第二条 连续12个月无交易的产品暂停挂网。\n"
    await say(router, account=ADMIN, file=Attachment("guawang.md", doc.encode()))
    assert "每月10日前申报" in await say(router, "北京挂网几号申报")
    follow = await say(router, "那一年没交易呢")
    assert "暂停挂网" in follow


def run_cli(args: list[str], home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
    env.update(SALESBOT_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_ingest_ask_list_delete_check_with_json(tmp_path: Path) -> None:
    assert run_cli(["seed", str(EXAMPLES / "org.yaml")], tmp_path).returncode == 0
    docs = EXAMPLES / "knowledge"
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"not a docx")
    ingest = run_cli(
        [
            "kb",
            "ingest",
            str(docs / "nhsa-stent-renewal-2026.md"),
            str(docs / "js-drg-2026.md"),
            str(broken),
            "--library",
            "policy",
            "--region",
            "全国",
            "--issuer",
            "联采办",
            "--effective-date",
            "2026-03-01",
            "--json",
        ],
        tmp_path,
    )
    assert ingest.returncode == 1  # one file failed, the others are in
    records = [json.loads(line) for line in ingest.stdout.splitlines()]
    assert [r["status"] for r in records] == ["created", "created", "failed"]
    assert records[0]["document_id"] == "nhsa-stent-renewal-2026" and records[0]["chunks"] > 5
    assert "已损坏" in records[2]["error"]

    ask = run_cli(
        ["ask", "-", "--as", "zhangsan", "--json"],
        tmp_path,
        stdin="支架集采中选价多少钱\n\n公司年会啥时候开\n",
    )
    assert ask.returncode == 0, ask.stderr
    first, second = (json.loads(line) for line in ask.stdout.splitlines())
    assert set(first) == {"question", "answer", "refused", "citations"}
    assert first["question"] == "支架集采中选价多少钱" and not first["refused"]
    citation = first["citations"][0]
    assert set(citation) == {"document_id", "title", "source", "section", "text", "score"}
    assert citation["source"] == str(docs / "nhsa-stent-renewal-2026.md") and "548元" in first["answer"]
    assert second["refused"] and second["citations"] == []

    listed = run_cli(["kb", "list", "--json"], tmp_path)
    assert [json.loads(line)["document_id"] for line in listed.stdout.splitlines()] == [
        "js-drg-2026",
        "nhsa-stent-renewal-2026",
    ]
    deleted = run_cli(["kb", "delete", "js-drg-2026"], tmp_path)
    assert deleted.returncode == 0 and "已删除" in deleted.stdout
    check = run_cli(["kb", "check", "--json"], tmp_path)
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is True
    assert run_cli(["ask", "集采", "--as", "nobody"], tmp_path).returncode == 2
