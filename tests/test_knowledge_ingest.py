"""Ingest on SQLite and PostgreSQL: all or nothing, duplicates, versions, delete, drift check."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from knowledge.base import DocumentMeta, IngestError, KnowledgeBase
from knowledge.vectors import VectorIndex, make_client
from storage.models import Chunk, Document

V1 = """# 关于规范骨科耗材跟台服务的通知

## 一、总体要求

（一）跟台人员不得上台操作，不得代替医务人员实施诊疗行为。

（二）跟台人员每年至少参加1次医疗机构组织的培训。

## 二、实施时间

本通知自2026年1月1日起施行。
"""
V2 = V1.replace("每年至少参加1次", "每半年至少参加1次").replace("2026年1月1日", "2026年7月1日")


class FailingVectors(VectorIndex):
    """Chroma that dies after writing part of a document's vectors (a crash mid-ingest)."""

    def add(self, ids, vectors, metadatas, batch=4000):
        super().add(ids[:1], vectors[:1], metadatas[:1])
        raise ConnectionError("chroma went away")


@pytest.fixture
def kb(engine: Engine, embedder, tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase(engine, VectorIndex(make_client(path=tmp_path / "chroma")), embedder)


def state(kb: KnowledgeBase) -> tuple[int, int, int, int]:
    with Session(kb.engine) as session:
        docs = len(session.exec(select(Document)).all())
        chunks = len(session.exec(select(Chunk)).all())
        lexical = len(kb.lexical.all_ids(session))
    return docs, chunks, lexical, kb.vectors.count()


def test_ingest_then_duplicate_then_new_version_then_delete(kb: KnowledgeBase) -> None:
    meta = DocumentMeta(library="policy", issuer="省卫健委", region="江苏")
    first = kb.ingest_bytes("gentai.md", V1.encode(), meta)
    assert first.status == "created" and first.document.version == 1
    assert first.document.title == "关于规范骨科耗材跟台服务的通知"
    n = first.chunks
    assert state(kb) == (1, n, n, n)
    with Session(kb.engine) as session:
        sections = [c.section for c in session.exec(select(Chunk).order_by(Chunk.ordinal))]
    assert sections[:2] == ["一、总体要求（一）", "一、总体要求（二）"]

    again = kb.ingest_bytes("copy-of-gentai.md", V1.encode(), meta)
    assert again.status == "duplicate" and "完全相同" in again.message
    assert state(kb) == (1, n, n, n)

    second = kb.ingest_bytes("gentai.md", V2.encode(), meta)
    assert second.status == "replaced" and second.document.version == 2 and "第 2 版" in second.message
    assert state(kb) == (1, second.chunks, second.chunks, second.chunks)
    with Session(kb.engine) as session:
        texts = " ".join(c.text for c in session.exec(select(Chunk)))
        ids = set(session.exec(select(Chunk.id)))
    assert "每半年" in texts and "2026年1月1日" not in texts
    assert ids == kb.vectors.all_ids() and all(":v2:" in i for i in ids)
    assert kb.check().ok

    removed = kb.delete("gentai")
    assert removed.id == "gentai"
    assert state(kb) == (0, 0, 0, 0)
    with pytest.raises(IngestError, match="没有文档"):
        kb.delete("gentai")


def test_unchanged_paragraphs_are_not_embedded_again(kb: KnowledgeBase) -> None:
    kb.ingest_bytes("gentai.md", V1.encode(), DocumentMeta())
    before = kb.embedder.encoded
    kb.ingest_bytes("gentai.md", V2.encode(), DocumentMeta())
    assert kb.embedder.encoded - before <= 2  # only the two changed paragraphs, at most


def test_failure_in_chroma_mid_ingest_leaves_no_trace(engine: Engine, embedder, tmp_path: Path) -> None:
    client = make_client(path=tmp_path / "chroma")
    good = KnowledgeBase(engine, VectorIndex(client), embedder)
    good.ingest_bytes("other.md", V2.replace("跟台", "驻场").encode(), DocumentMeta())
    before = state(good)
    broken = KnowledgeBase(engine, FailingVectors(client), embedder, lexical=good.lexical)
    with pytest.raises(IngestError, match="入库失败，没有保存任何内容"):
        broken.ingest_bytes("gentai.md", V1.encode(), DocumentMeta())
    assert state(good) == before
    assert good.check().ok


def test_failure_at_commit_removes_the_vectors_already_written(kb: KnowledgeBase) -> None:
    def refuse(session) -> None:
        raise RuntimeError("disk full")

    event.listen(Session, "before_commit", refuse)
    try:
        with pytest.raises(IngestError, match="disk full"):
            kb.ingest_bytes("gentai.md", V1.encode(), DocumentMeta())
    finally:
        event.remove(Session, "before_commit", refuse)
    assert state(kb) == (0, 0, 0, 0)


def test_broken_file_and_bad_library_store_nothing(kb: KnowledgeBase) -> None:
    with pytest.raises(IngestError, match="已损坏"):
        kb.ingest_bytes("x.pdf", b"%PDF-1.4 nonsense", DocumentMeta())
    with pytest.raises(IngestError, match="未知的知识库分类"):
        kb.ingest_bytes("x.md", V1.encode(), DocumentMeta(library="gossip"))
    assert state(kb) == (0, 0, 0, 0)


def test_check_reports_drift_between_the_three_stores(kb: KnowledgeBase) -> None:
    result = kb.ingest_bytes("gentai.md", V1.encode(), DocumentMeta())
    some = sorted(kb.vectors.all_ids())[0]
    kb.vectors.delete([some])
    kb.vectors.add(["ghost:v1:0"], kb.embedder.encode(["幽灵段落"]), [{"document_id": "ghost"}])
    report = kb.check()
    assert not report.ok
    assert report.missing_vectors == [some] and report.orphan_vectors == ["ghost:v1:0"]
    assert report.chunks == result.chunks and not report.missing_lexical
    kb.check(repair=True)
    assert kb.check().orphan_vectors == []


DOCS = {
    "js-gentai.md": (
        "# 江苏省跟台管理通知\n\n第一条 跟台人员每年至少参加1次培训。\n\n第二条 跟台人员不得上台操作。\n",
        DocumentMeta(
            library="policy",
            issuer="江苏省卫生健康委员会",
            region="江苏",
            effective_date=date(2026, 4, 1),
            products=["GK-TR01"],
        ),
    ),
    "bj-gentai.md": (
        "# 北京市跟台管理通知\n\n第一条 跟台人员每半年参加1次培训。\n\n第二条 跟台须登记。\n",
        DocumentMeta(
            library="policy",
            issuer="北京市医疗保障局",
            region="北京",
            effective_date=date(2026, 1, 1),
            products=["XN-ZJ01"],
        ),
    ),
    "case-gentai.md": (
        "# 跟台培训案例\n\n跟台人员培训做得好的医院，投诉少了一半。\n",
        DocumentMeta(library="case", issuer="销售部", region="全国"),
    ),
}


def test_search_filters_and_weights_on_both_databases(kb: KnowledgeBase) -> None:
    from knowledge.retrieval import Filters, RetrievalConfig, Retriever

    for name, (text, meta) in DOCS.items():
        kb.ingest_bytes(name, text.encode(), meta)
    question = "跟台人员培训几次"

    def top(config: RetrievalConfig | None = None, filters: Filters | None = None) -> list[str]:
        return [h.document.id for h in Retriever(kb, config).search(question, k=3, filters=filters)]

    assert set(top()[:3]) == {"js-gentai", "bj-gentai", "case-gentai"}
    assert set(top(filters=Filters(region="北京"))) == {"bj-gentai", "case-gentai"}
    assert set(top(filters=Filters(library=["case"]))) == {"case-gentai"}
    assert set(top(filters=Filters(product="GK-TR01"))) == {"js-gentai"}
    assert set(top(filters=Filters(since=date(2026, 3, 1)))) == {"js-gentai"}
    favour_js = top(RetrievalConfig(issuer_weights={"卫健委": 3.0}))
    favour_bj = top(RetrievalConfig(issuer_weights={"医保局": 3.0}))
    assert favour_js[0] == "js-gentai" and favour_bj[0] == "bj-gentai"
    assert top(RetrievalConfig(library_weights={"case": 5.0}))[0] == "case-gentai"
