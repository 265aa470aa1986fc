"""Talk tracks written by an LLM (a local fake OpenAI-compatible server): evidence and citations stay."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.pushes import trigger_document
from knowledge.answer import make_llm
from knowledge.base import KnowledgeBase
from knowledge.impact import ImpactConfig
from knowledge.talktracks import write_with_llm
from knowledge.vectors import VectorIndex, make_client
from storage.db import create_schema, make_engine
from storage.models import Push
from storage.seed import seed_org
from tests.conftest import EXAMPLES
from tests.fake_openai import FakeOpenAI
from tests.test_talktracks import ingest

LLM_TRACK = (
    "1. 先讲清 DRG 2.0 何时执行、骨科耗材怎么纳入病组 [1]\n"
    "2. 锁定接骨板按每块不超过2600元测算，帮科室算单例总费用 [2]\n"
    "3. 用并发症和再手术率讲临床价值 [2][9]\n"
    "下一步：周三前约医保办主任顾红，带病组成本测算表。"
)


@pytest.fixture
def kb(embedder, tmp_path: Path) -> KnowledgeBase:
    engine = make_engine(f"sqlite:///{tmp_path / 'salesbot.db'}")
    create_schema(engine)
    seed_org(engine, EXAMPLES / "org.yaml")
    kb = KnowledgeBase(engine, VectorIndex(make_client(path=tmp_path / "chroma")), embedder)
    ingest(kb, "js-drg-2026.md")
    return kb


def tracks(engine: Engine) -> dict[str, dict]:
    with Session(engine) as session:
        pushes = session.exec(select(Push).where(Push.kind == "talk_track")).all()
        return {p.user_id: p.body for p in pushes}


async def run_with(fake: FakeOpenAI, engine: Engine) -> None:
    async with fake.running():
        writer = partial(write_with_llm, llm=make_llm(fake.base_url, "fake-model", "sk-test", 5.0))
        await asyncio.to_thread(trigger_document, engine, "js-drg-2026", ImpactConfig(), writer=writer)


async def test_llm_writes_the_points_and_only_real_citations_survive(kb: KnowledgeBase) -> None:
    fake = FakeOpenAI()
    fake.replies += [LLM_TRACK, LLM_TRACK]  # one call per affected rep (陈晨, 刘洋)
    await run_with(fake, kb.engine)
    body = tracks(kb.engine)["chenchen"]
    assert body["track"]["written_by"] == "llm"
    text = body["text"]
    assert "锁定接骨板按每块不超过2600元测算，帮科室算单例总费用 [2]" in text
    assert "[9]" not in text and "周三前约医保办主任顾红" in text
    assert "一、变化要点" in text and "依据：\n[1]" in text  # the analysed evidence is kept
    prompt = fake.requests[0]["messages"][1]["content"]
    assert prompt.startswith("<资料>\n[1] ") and "顾红" in prompt


async def test_a_failing_or_uncited_llm_keeps_the_template(kb: KnowledgeBase) -> None:
    fake = FakeOpenAI()
    fake.replies += ["随便聊聊，没有依据。", "也没有依据。"]
    await run_with(fake, kb.engine)
    assert {b["track"]["written_by"] for b in tracks(kb.engine).values()} == {"template"}
    assert all("三、沟通要点" in b["text"] and "[1]" in b["text"] for b in tracks(kb.engine).values())
