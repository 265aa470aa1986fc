"""Reps' notes: the extractor on colloquial Chinese, tags applied with their source, corrections."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from skills.notices import Notice
from skills.signals.extract import ProductInfo, cn_number, extract
from skills.signals.notes import record_note, undo_note
from skills.signals.tags import Inc, TagChangeInfo, apply_tag_changes, tag_hooks, take_hook_notices
from storage.db import session_scope
from storage.models import Customer, Signal, TagChange
from storage.seed import seed_org
from tests.conftest import EXAMPLES

PRODUCTS = [
    ProductInfo("YX-CT01", "64排螺旋CT", ("CT", "影像设备", "大型医用设备")),
    ProductInfo("YX-US02", "彩色多普勒超声诊断仪", ("超声", "影像设备")),
    ProductInfo("XN-ZJ01", "药物洗脱冠脉支架", ("冠脉支架", "心血管介入", "PCI", "支架")),
    ProductInfo("XN-QN02", "PTCA球囊扩张导管", ("球囊", "心血管介入", "导管")),
    ProductInfo("SW-IV01", "化学发光免疫分析试剂", ("体外诊断", "IVD", "试剂", "化学发光")),
]

# (note, expected tags: exactly these keys with these values)
PHRASINGS: list[tuple[str, dict[str, Any]]] = [
    ("协和王主任说竞品报价低了10%", {"competitor": "竞品", "competitor_views": 1,
                                "competitor_price_gap": 10}),
    ("看了竞品报价三次", {"competitor": "竞品", "competitor_views": 3}),
    ("主任说别家报的价比我们便宜百分之十五", {"competitor": "竞品", "competitor_views": 1,
                                      "competitor_price_gap": 15}),
    ("阜外说美敦力给的价便宜两成", {"competitor": "美敦力", "competitor_views": 1,
                                "competitor_price_gap": 20}),
    ("那边竟品报价比我们低8个点", {"competitor": "竞品", "competitor_views": 1,  # typo 竟品
                               "competitor_price_gap": 8}),
    ("GE 报了九折", {"competitor": "GE", "competitor_views": 1, "competitor_price_gap": 10}),
    ("我们比竞品便宜5％", {"competitor": "竞品", "competitor_price_gap": -5}),  # full-width %, we are cheaper
    ("联影的人天天去，主任看了他们的官网好几次", {"competitor": "联影", "competitor_views": 2}),
    ("钱主任对上次的售后很不满，投诉到院办了", {"complaint": True, "sentiment": "negative"}),
    ("彭主任投述试剂批次有问题", {"complaint": True, "sentiment": "negative"}),  # typo 投述
    ("货又没到，拖了两周了", {"delivery_delay": True}),
    ("到获延迟了一周，主任有情绪", {"delivery_delay": True, "sentiment": "negative"}),  # typo 到获
    ("说到货延迟，有点不高兴", {"delivery_delay": True, "sentiment": "negative"}),
    ("蒋主任今天聊了五分钟就被叫走了", {"meeting_cut_short": True}),
    ("会开到一半被打断了，主任脸色不太好", {"meeting_cut_short": True, "sentiment": "negative"}),
    ("徐处对我们的64排CT挺感兴趣，想要资料", {"interested_products": ["YX-CT01"]}),
    ("陈主任对支架很认可，说下个月想试用球囊", {"sentiment": "positive",
                                   "interested_products": ["XN-ZJ01", "XN-QN02"]}),
    ("对方案很满意", {"sentiment": "positive"}),
    ("孙处长不太满意我们的报价", {"sentiment": "negative"}),  # negation is not "满意"
    ("王主任说没啥问题，挺好的", {"sentiment": "positive"}),  # 没问题 is no complaint
    ("对超声不感兴趣", {"sentiment": "negative"}),  # no interest
    ("今天天气不错，顺路送了资料", {"sentiment": "positive"}),
    ("对手术室的排班有点意见很大", {"complaint": True, "sentiment": "negative"}),  # 对手术 is not 对手
]


@pytest.mark.parametrize(("note", "expected"), PHRASINGS, ids=[p[0][:12] for p in PHRASINGS])
def test_extractor_reads_colloquial_notes(note: str, expected: dict[str, Any]) -> None:
    assert extract(note, PRODUCTS).tags == expected


def test_chinese_numbers() -> None:
    assert [cn_number(s) for s in ("15", "十五", "二十", "两", "一百", "三十五", "x")] == [
        15, 15, 20, 2, 100, 35, None]


@pytest.fixture
def org(engine: Engine) -> Engine:
    seed_org(engine, EXAMPLES / "org.yaml")
    return engine


def _customer(engine: Engine, cid: str) -> Customer:
    with Session(engine) as s:
        c = s.get(Customer, cid)
        assert c is not None
        return c


def _history(engine: Engine, cid: str) -> list[tuple[str, Any, Any, str]]:
    with Session(engine) as s:
        rows = s.exec(select(TagChange).where(TagChange.subject_id == cid).order_by(TagChange.id))
        return [(r.tag, r.old_value, r.new_value, r.source) for r in rows if not r.source.startswith("org:")]


def test_note_applies_tags_with_its_source(org: Engine) -> None:
    out = record_note(org, "zhangsan", "记一下：协和王主任说竞品报价低了10%")
    assert out.ok and out.customer_id == "bj-xiehe"
    tags = _customer(org, "bj-xiehe").tags
    assert tags["competitor_views"] == 2 and tags["competitor_price_gap"] == 10
    src = f"note:{out.signal_id}"
    assert set(_history(org, "bj-xiehe")) == {
        ("competitor_views", 1, 2, src), ("competitor", None, "竞品", src),
        ("competitor_price_gap", None, 10, src)}
    text = out.text()
    assert "已记录到「北京协和医院」" in text and "竞品浏览/报价次数：1 → 2" in text
    assert ("识别有误，全部撤销", f"note_undo:{out.signal_id}") in out.buttons()


def test_note_names_customer_first_and_links_the_opportunity(org: Engine) -> None:
    out = record_note(org, "chenchen", "省人医 徐处对64排CT挺感兴趣，想要资料")
    assert out.customer_id == "js-renmin" and out.opportunity_id == "opp-010"
    assert _customer(org, "js-renmin").tags["interested_products"] == ["YX-CT01"]
    with Session(org) as s:
        sig = s.get(Signal, out.signal_id)
        assert sig is not None and sig.rep_id == "chenchen" and sig.opportunity_id == "opp-010"
        assert sig.text == "省人医 徐处对64排CT挺感兴趣，想要资料"


def test_only_the_owner_and_their_managers_may_note(org: Engine) -> None:
    refused = record_note(org, "lisi", "协和 主任投诉了")
    assert not refused.ok and "不是你负责的客户" in refused.message
    assert "complaint" not in _customer(org, "bj-xiehe").tags
    assert record_note(org, "wangjing", "协和 主任投诉了").ok  # the owner's manager
    assert record_note(org, "zhoujh", "协和 主任投诉了").ok  # and the director above
    assert not record_note(org, "zhangsan", "某个不存在的医院 投诉了").ok


def test_undo_reverts_the_note_and_the_correction_sticks(org: Engine) -> None:
    out = record_note(org, "zhangsan", "协和 王主任说竞品报价低了10%，还投诉了售后")
    later = record_note(org, "zhangsan", "协和 主任又看了竞品的报价")  # competitor_views 2 -> 3
    assert _customer(org, "bj-xiehe").tags["competitor_views"] == 3

    dropped = undo_note(org, out.signal_id, "zhangsan", tag="complaint")
    assert dropped.ok and dropped.reverted == ["complaint"]
    assert "complaint" not in _customer(org, "bj-xiehe").tags

    undone = undo_note(org, out.signal_id, "zhangsan")
    tags = _customer(org, "bj-xiehe").tags
    assert tags["competitor_views"] == 2  # only what the first note added is taken back
    assert "competitor_price_gap" not in tags
    assert tags["competitor"] == "竞品"  # set again by the later note: kept
    assert "competitor" not in undone.reverted and "其他来源" in undone.text

    again = undo_note(org, out.signal_id, "zhangsan")
    assert not again.ok and "没有需要撤销" in again.text
    assert not undo_note(org, later.signal_id, "lisi").ok  # someone else's note
    with Session(org) as s:
        sig = s.get(Signal, out.signal_id)
        assert sig is not None and sig.corrected and sig.tags == {}
        assert [c["tags"] for c in sig.corrections] == [
            ["complaint"], ["competitor", "competitor_views", "competitor_price_gap", "sentiment"]]
        assert sig.corrections[1]["skipped"] == ["competitor"]
    undo_sources = {h[3] for h in _history(org, "bj-xiehe")}
    assert f"note:{out.signal_id}:undo" in undo_sources


def test_a_note_over_the_threshold_reaches_the_tag_hooks_after_commit(org: Engine) -> None:
    """The permission engine plugs in here: a hook sees competitor_views cross 3 and tells the rep."""
    seen: list[list[TagChangeInfo]] = []

    def permission_hook(changes: list[TagChangeInfo]) -> list[Notice]:
        seen.append(changes)
        return [Notice(to="zhangsan", text="已开放调价授权", kind="grant")
                for c in changes if c.tag == "competitor_views" and c.new_value > 3 >= (c.old_value or 0)]

    with tag_hooks.registered(permission_hook):
        out = record_note(org, "zhangsan", "记一下：协和看了竞品报价三次")
    assert _customer(org, "bj-xiehe").tags["competitor_views"] == 4
    assert ("competitor_views", 1, 4, f"note:{out.signal_id}") in _history(org, "bj-xiehe")
    assert [n.text for n in out.notices] == ["已开放调价授权"]
    assert len(seen) == 1 and {c.tag for c in seen[0]} == {"competitor", "competitor_views"}


def test_hooks_see_nothing_from_a_rolled_back_transaction(org: Engine) -> None:
    seen: list[Any] = []
    in_tx: list[Any] = []

    def tx_hook(session: Session, changes: list[TagChangeInfo]) -> None:
        in_tx.append(changes)

    tag_hooks.register_in_transaction(tx_hook)
    try:
        with tag_hooks.registered(seen.append):
            with pytest.raises(RuntimeError), session_scope(org) as s:
                apply_tag_changes(s, "bj-xiehe", {"nps": 0}, "event:test")
                raise RuntimeError("boom")
            assert seen == [] and len(in_tx) == 1
            assert _customer(org, "bj-xiehe").tags["nps"] == 42
            with session_scope(org) as s:
                rows = apply_tag_changes(s, "bj-xiehe", {"nps": 40, "competitor_views": Inc(2), "gone": None},
                                         "event:test")
        assert [(r.tag, r.old_value, r.new_value) for r in rows] == [("nps", 42, 40),
                                                                     ("competitor_views", 1, 3)]
        assert len(seen) == 1 and len(in_tx) == 2 and take_hook_notices(s) == []
    finally:
        tag_hooks.unregister_in_transaction(tx_hook)


def _llm(answer: str | None, seen: list[dict[str, Any]]) -> Any:
    import json

    import httpx

    from skills.signals.llm_extract import LLMExtractor

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        if answer is None:
            return httpx.Response(503)
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": answer}}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return LLMExtractor("http://llm.test/v1", "m", "k", client=client)


def test_llm_extractor_when_configured_and_the_rules_when_it_fails(org: Engine) -> None:
    seen: list[dict[str, Any]] = []
    answer = ('好的：{"competitor": "西门子", "competitor_quote_count": 1, "price_gap_percent": 12, '
              '"complaint": false, "sentiment": "negative", "interested_products": ["YX-CT01", "NOPE"]}')
    out = record_note(org, "zhangsan", "协和 主任嫌我们CT贵，西门子报得低一些", extractor=_llm(answer, seen))
    assert {f.tag: f.value for f in out.findings} == {
        "competitor": "西门子", "competitor_views": 1, "competitor_price_gap": 12, "sentiment": "negative",
        "interested_products": ["YX-CT01"]}
    assert seen[0]["model"] == "m" and "YX-CT01" in seen[0]["messages"][0]["content"]
    with Session(org) as s:
        sig = s.get(Signal, out.signal_id)
        assert sig is not None and sig.extractor == "llm"
    down = record_note(org, "zhangsan", "协和 主任投诉了", extractor=_llm(None, []))
    assert {f.tag for f in down.findings} == {"complaint", "sentiment"}  # the rules answered
    garbage = record_note(org, "zhangsan", "协和 到货延迟", extractor=_llm("sorry", []))
    assert [f.tag for f in garbage.findings] == ["delivery_delay"]
