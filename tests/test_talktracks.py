"""Issue 6: impact analysis, talk tracks and the durable push queue (no channels here)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.pushes import trigger_document
from knowledge.base import DocumentMeta, KnowledgeBase
from knowledge.impact import ImpactConfig
from knowledge.manifest import read_manifest
from knowledge.vectors import VectorIndex, make_client
from skills import pushqueue
from skills.pushqueue import PushItem
from storage.models import Push
from storage.seed import seed_org
from tests.conftest import EXAMPLES

DOCS = EXAMPLES / "knowledge"
CONFIG = ImpactConfig()


def manifest() -> dict[str, DocumentMeta]:
    return {path.name: meta for path, meta in read_manifest(DOCS / "manifest.yaml")}


@pytest.fixture
def kb(engine: Engine, embedder, tmp_path: Path) -> KnowledgeBase:
    seed_org(engine, EXAMPLES / "org.yaml")
    return KnowledgeBase(engine, VectorIndex(make_client(path=tmp_path / "chroma")), embedder)


def ingest(kb: KnowledgeBase, name: str, content: bytes | None = None, meta: DocumentMeta | None = None):
    return kb.ingest_bytes(
        name, content if content is not None else (DOCS / name).read_bytes(), meta or manifest()[name]
    )


def reps_of(engine: Engine, doc: str, kind: str = "talk_track") -> list[str]:
    with Session(engine) as session:
        return sorted(
            p.user_id for p in session.exec(select(Push).where(Push.document_id == doc, Push.kind == kind))
        )


def test_the_right_reps_and_only_they_get_a_push(kb: KnowledgeBase, engine: Engine) -> None:
    for name in ("js-drg-2026.md", "nhsa-stent-renewal-2026.md", "bj-tcm-pieces-2026.txt"):
        ingest(kb, name)
    drg = trigger_document(engine, "js-drg-2026", CONFIG)
    # 江苏 reps owning customers with GK-* opportunities: 陈晨 (省人医 opp-009), 刘洋 (苏大附一 opp-012)
    assert drg.impact.regions == ["江苏"]
    assert set(drg.impact.product_codes) == {"GK-TR01", "GK-JZ02", "GK-GJ03"}
    assert reps_of(engine, "js-drg-2026") == ["chenchen", "liuyang"]
    assert reps_of(engine, "js-drg-2026", "digest") == ["lihua"]
    # national stent notice: reps with XN-* opportunities in both regions (李四 阜外, 陈晨 鼓楼)
    stent = trigger_document(engine, "nhsa-stent-renewal-2026", CONFIG)
    assert stent.impact.regions == ["北京", "江苏"]
    assert {"XN-ZJ01", "XN-QN02"} == set(stent.impact.product_codes)
    assert reps_of(engine, "nhsa-stent-renewal-2026") == ["chenchen", "lisi"]
    assert reps_of(engine, "nhsa-stent-renewal-2026", "digest") == ["lihua", "wangjing"]
    # the unrelated notice (TCM pieces, 北京): nobody
    tcm = trigger_document(engine, "bj-tcm-pieces-2026", CONFIG)
    assert tcm.impact.products == [] and tcm.items == []
    assert "不推送" in tcm.summary()


def test_clause_evidence_points_at_the_right_clauses(kb: KnowledgeBase, engine: Engine) -> None:
    ingest(kb, "js-drg-2026.md")
    report = trigger_document(engine, "js-drg-2026", CONFIG, dry_run=True)
    by_code = {p.code: p for p in report.impact.products}
    plate = by_code["GK-TR01"].evidence
    assert any("接骨板" in e.clause and "第三条" in e.section for e in plate)
    assert any("锁定接骨板按每块不超过2600元" in e.clause and "第八条" in e.section for e in plate)
    spine = by_code["GK-JZ02"].evidence
    assert any("椎弓根螺钉按每枚不超过650元" in e.clause for e in spine)
    assert all(0 < e.score <= 1 for p in report.impact.products for e in p.evidence)
    hip = by_code["GK-GJ03"]
    assert hip.score == 1.0 and "人工髋关节假体" in hip.evidence[0].clause
    assert report.created == [] and reps_of(engine, "js-drg-2026") == []  # a dry run queues nothing


def test_talk_track_content(kb: KnowledgeBase, engine: Engine) -> None:
    ingest(kb, "js-drg-2026.md")
    report = trigger_document(engine, "js-drg-2026", CONFIG)
    track = next(i for i in report.items if i.user_id == "chenchen").body["track"]
    text = next(i for i in report.items if i.user_id == "chenchen").body["text"]
    assert 3 <= len(track["points"]) <= 5
    assert track["citations"] and all(f"[{c['n']}]" in text for c in track["citations"])
    assert "江苏省人民医院" in text and "opp-009" in text
    # the contacts: the 医保办主任 (cost/DRG) before the 骨科主任 and the 设备处处长 for a DRG payment change
    names = [c["name"] for c in track["contacts"]]
    assert names[0] == "顾红" and "沈涛" in names
    assert "医保" in track["contacts"][0]["why"]
    assert "下一步" in text and "顾红" in track["next_step"]
    # the cost point cites the clause on consumable prices (第八条), not just the first one
    cost = next(p for p in track["points"] if p.startswith("帮科室算总账"))
    cited = next(c for c in track["citations"] if f"[{c['n']}]" in cost)
    assert "第八条" in cited["section"]
    assert len(text) < 4096
    digest = next(i for i in report.items if i.kind == "digest").body["text"]
    assert "陈晨" in digest and "刘洋" in digest


def test_no_duplicate_on_reingest_and_a_new_version_pushes_again_with_what_changed(
    kb: KnowledgeBase, engine: Engine
) -> None:
    first = ingest(kb, "js-drg-2026.md")
    trigger_document(engine, first.document.id, CONFIG)
    again = ingest(kb, "js-drg-2026.md")
    assert again.status == "duplicate"
    rerun = trigger_document(engine, "js-drg-2026", CONFIG)  # even run again: nothing new
    assert rerun.created == [] and rerun.existing == 3
    text = (DOCS / "js-drg-2026.md").read_text()
    changed = text.replace("锁定接骨板按每块不超过2600元纳入测算", "锁定接骨板按每块不超过2300元纳入测算")
    second = ingest(kb, "js-drg-2026.md", changed.encode())
    assert second.status == "replaced" and second.document.version == 2
    report = trigger_document(engine, "js-drg-2026", CONFIG)
    assert len(report.created) == 3
    assert any("2300元" in u for u in report.updated) and any(
        "已删除" in u and "2600" in u for u in report.updated
    )
    with Session(engine) as session:
        v2 = session.exec(select(Push).where(Push.document_version == 2, Push.user_id == "chenchen")).one()
    assert "第 2 版" in v2.body["text"] and "2300元" in v2.body["text"]


def test_concurrent_workers_never_claim_the_same_push_and_keep_order_per_rep(engine: Engine) -> None:
    seed_org(engine, EXAMPLES / "org.yaml")
    reps = ["zhangsan", "lisi", "wangwu", "chenchen", "liuyang", "sunyue"]
    items = [
        PushItem(f"t:{n}:{rep}", rep, "talk_track", {"text": f"{rep} #{n}"}) for n in range(4) for rep in reps
    ]
    created, existing = pushqueue.enqueue(engine, items)
    assert len(created) == 24 and existing == 0
    assert pushqueue.enqueue(engine, items[:5]) == ([], 5)  # same keys: nothing new

    claimed: list[list[Push]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            rows = pushqueue.claim(engine, name, limit=4)
            if not rows:
                return
            with lock:
                claimed.append(rows)
            for row in rows:
                pushqueue.mark_sent(engine, row)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r.id for batch in claimed for r in batch]
    assert sorted(ids) == sorted(created)  # every push once, none twice
    for batch in claimed:
        assert len({r.user_id for r in batch}) == len(batch)  # one in flight per rep
    with Session(engine) as session:
        rows = list(session.exec(select(Push).order_by(Push.sent_at, Push.id)))
    assert all(r.status == "sent" and r.attempts == 1 for r in rows)
    for rep in reps:
        order = [r.body["text"] for r in rows if r.user_id == rep]
        assert order == [f"{rep} #{n}" for n in range(4)]


def test_retry_backoff_failure_and_stale_claims(engine: Engine) -> None:
    from datetime import timedelta

    from storage.types import utcnow

    seed_org(engine, EXAMPLES / "org.yaml")
    pushqueue.enqueue(
        engine,
        [
            PushItem("a", "zhangsan", "talk_track", {"text": "a"}),
            PushItem("b", "zhangsan", "talk_track", {"text": "b"}),
        ],
    )
    now = utcnow()
    [row] = pushqueue.claim(engine, "w", now=now)
    assert row.body["text"] == "a"
    assert pushqueue.claim(engine, "w2", now=now) == []  # b waits for a: order per rep
    assert pushqueue.mark_retry(engine, row, "429", max_attempts=2, base_backoff=10, now=now) == "queued"
    assert pushqueue.claim(engine, "w", now=now + timedelta(seconds=5)) == []  # backing off
    [row] = pushqueue.claim(engine, "w", now=now + timedelta(seconds=11))
    assert row.attempts == 2
    # the worker dies mid-send: after the lease the push is claimable again
    assert pushqueue.claim(engine, "w3", now=now + timedelta(seconds=20), lease=60) == []
    [again] = pushqueue.claim(engine, "w3", now=now + timedelta(seconds=100), lease=60)
    assert again.id == row.id
    assert not pushqueue.mark_sent(engine, row)  # the old claim cannot finish it any more
    assert pushqueue.mark_retry(engine, again, "boom", max_attempts=2, now=now) == "failed"
    [b] = pushqueue.claim(engine, "w", now=now + timedelta(seconds=200))
    assert b.body["text"] == "b"  # a failed push does not block the next one
    assert pushqueue.record_feedback(engine, b.id, "lisi", "up") is None  # not theirs
    pushqueue.mark_sent(engine, b)
    fb = pushqueue.record_feedback(engine, b.id, "zhangsan", "down")
    assert fb is not None and fb.status == "acknowledged" and fb.feedback == "useless"


def test_cli_push_preview_rerun_status(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from bot.cli import app as cli
    from storage.db import create_schema, make_engine
    from storage.models import User

    url = f"sqlite:///{tmp_path / 'salesbot.db'}"
    monkeypatch.setenv("SALESBOT_HOME", str(tmp_path))
    monkeypatch.setenv("SALESBOT_DATABASE_URL", url)
    engine = make_engine(url)
    create_schema(engine)
    seed_org(engine, EXAMPLES / "org.yaml")
    kb = KnowledgeBase(engine, VectorIndex(make_client(path=tmp_path / "chroma-test")), embedder)
    ingest(kb, "js-drg-2026.md")
    runner = CliRunner()

    preview = runner.invoke(cli, ["push", "preview", "js-drg-2026"])
    assert preview.exit_code == 0, preview.output
    assert "将推送：代表 2 位（陈晨、刘洋）" in preview.output and "第八条" in preview.output
    assert "【政策话术包】" in preview.output
    assert (
        runner.invoke(cli, ["push", "status", "js-drg-2026"]).output.strip() == "js-drg-2026：没有推送记录。"
    )

    rerun = runner.invoke(cli, ["push", "rerun", "js-drg-2026", "--json"])
    assert rerun.exit_code == 0, rerun.output
    assert len(json.loads(rerun.output)["created"]) == 3
    # the org changes: 苏州大学附属第一医院 moves to 孙悦; a rerun reaches her, and nobody twice
    with Session(engine) as session:
        from storage.models import Customer

        customer = session.get(Customer, "js-sdfy")
        customer.owner_id = "sunyue"  # type: ignore[union-attr]
        session.add(customer)
        session.commit()
        assert session.get(User, "sunyue") is not None
    again = json.loads(runner.invoke(cli, ["push", "rerun", "js-drg-2026", "--json"]).output)
    assert [p["user"] for p in again["pushes"] if p["kind"] == "talk_track"] == ["chenchen", "sunyue"]
    assert len(again["created"]) == 1 and again["existing"] == 2

    status = runner.invoke(cli, ["push", "status", "js-drg-2026", "--json"])
    rows = json.loads(status.output)
    assert sorted(r["user"] for r in rows) == ["chenchen", "lihua", "liuyang", "sunyue"]
    assert {r["status"] for r in rows} == {"queued"}
    text = runner.invoke(cli, ["push", "status", "js-drg-2026"]).output
    assert "陈晨（talk_track）排队中" in text and "合计：排队中 4" in text
    assert runner.invoke(cli, ["push", "preview", "nope"]).exit_code == 1
    engine.dispose()
