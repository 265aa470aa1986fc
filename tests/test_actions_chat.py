"""The product's permission scenarios end to end through the router (the channel-neutral core),
on SQLite and PostgreSQL. The same conversations run over the fake Telegram/WeCom servers once the
channels are merged: only ``Chat`` changes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.models import ActionLedger, ActionRequest, Approval, AuditLog, Grant
from storage.types import utcnow
from tests.perm_helpers import Chat, counts, own, seeded


@pytest.fixture
def chat(engine: Engine, tmp_path: Path) -> Chat:
    return Chat(seeded(engine), tmp_path)


async def test_within_authority_is_executed_at_once_with_its_basis(chat: Chat) -> None:
    replies = await chat.say("zhangsan", "给北医三院发300元补偿，因为交付延迟")
    text = own(replies)
    assert "已为北京大学第三医院办理补偿包 300 元" in text and "凭证号 CP-" in text
    assert "本次授权依据：规则 bad-review-care" in text and "customer.nps=-20" in text
    with Session(chat.engine) as s:
        ledger = s.exec(select(ActionLedger)).one()
        assert ledger.amount == Decimal(300) and ledger.reference.startswith("CP-")
        req = s.exec(select(ActionRequest)).one()
        assert req.status == "executed" and req.reason == "交付延迟"
        assert req.basis["consumed"]["name"] == "bad-review-care"  # tightest sufficient (300 < 500)
        grant = s.exec(select(Grant).where(Grant.rule_id == "bad-review-care")).one()
        assert grant.uses_left == 2


async def test_above_authority_card_to_manager_approve_executes_and_both_are_told(chat: Chat) -> None:
    replies = await chat.say("zhangsan", "/comp 北医三院 800 设备故障")
    assert "已提交给 王静 审批" in own(replies)
    card = next(r for r in replies if r.to == "wangjing")
    for part in (
        "张三",
        "北京大学第三医院",
        "800 元",
        "当前权限：500 元以内",
        "review_match=0.86",
        "硬上限：5000 元",
    ):
        assert part in card.text
    approve = chat.buttons["wangjing"][0]
    assert approve.startswith("approve:") and len(approve.encode()) <= 64
    done = await chat.press("wangjing", approve)
    assert "你已批准" in own(done) and "凭证号 CP-" in own(done)
    assert "王静 批准了你的申请" in own(done, "zhangsan")
    again = await chat.press("wangjing", approve)  # a second tap executes nothing more
    assert "已经处理过了" in own(again)
    with Session(chat.engine) as s:
        assert len(list(s.exec(select(ActionLedger)))) == 1
        assert s.exec(select(ActionRequest)).one().status == "executed"


async def test_reject_tells_the_rep_and_executes_nothing(chat: Chat) -> None:
    await chat.say("zhangsan", "/comp 北医三院 800")
    done = await chat.press("wangjing", chat.buttons["wangjing"][1])
    assert "你已拒绝" in own(done) and "王静 拒绝了你的申请" in own(done, "zhangsan")
    assert counts(chat.engine)["ActionLedger"] == 0


async def test_timeout_escalates_once_then_expires_and_the_rep_is_told(chat: Chat) -> None:
    await chat.say("zhangsan", "/comp 北医三院 1500 客户投诉")
    now = utcnow()
    assert chat.service.process_due_approvals(now + timedelta(hours=3)) == []
    notices = chat.service.process_due_approvals(now + timedelta(hours=4, seconds=1))
    by = {n.to: n.text for n in notices}
    director_card = next(n for n in notices if n.to == "zhoujh")
    assert director_card.buttons[0][0][1].startswith("approve:")
    assert (
        "升级给 周建华" in by["zhangsan"]
        and "已升级给你" in by["zhoujh"]
        and "升级给 周建华" in by["wangjing"]
    )
    assert chat.service.process_due_approvals(now + timedelta(hours=4, seconds=2)) == []  # once only
    # the original approver is no longer the designated one; the director (above) may still decide
    late = await chat.press("wangjing", chat.buttons["wangjing"][0])
    assert "不是审批" in own(late)
    expired = chat.service.process_due_approvals(now + timedelta(hours=8, seconds=2))
    assert any("已过期" in n.text and n.to == "zhangsan" for n in expired)
    with Session(chat.engine) as s:
        assert s.exec(select(Approval)).one().status == "expired"
        assert s.exec(select(ActionRequest)).one().status == "expired"
        actions = [a.action for a in s.exec(select(AuditLog))]
        assert "approval.escalate" in actions and "approval.expire" in actions
    assert "已经处理过了" in own(await chat.press("zhoujh", director_card.buttons[0][0][1]))
    assert counts(chat.engine)["ActionLedger"] == 0


async def test_director_above_the_approver_may_decide(chat: Chat) -> None:
    await chat.say("zhangsan", "/comp 北医三院 900")
    payload = chat.buttons["wangjing"][0]
    done = await chat.press("zhoujh", payload)
    assert "你已批准" in own(done) and "周建华 批准了你的申请" in own(done, "zhangsan")
    assert "已由 周建华 批准" in own(done, "wangjing")


async def test_unauthorised_tap_is_refused_and_changes_nothing(chat: Chat) -> None:
    await chat.say("zhangsan", "/comp 北医三院 800")
    payload = chat.buttons["wangjing"][0]
    before = counts(chat.engine)
    for intruder in ("lisi", "lihua", "zhangsan"):
        assert "不是审批" in own(await chat.press(intruder, payload))
    assert counts(chat.engine) == before
    with Session(chat.engine) as s:
        assert s.exec(select(Approval)).one().status == "pending"


async def test_tag_change_opens_then_closes_a_grant(chat: Chat) -> None:
    # 阜外 (lisi) has 2 competitor views: price authority is the ±3 % baseline
    assert "超出了你当前的权限" in own(await chat.say("lisi", "/price 阜外 -10"))
    perms = chat.service.permissions
    from storage.db import session_scope

    with session_scope(chat.engine) as s:
        opened = perms.set_tags(
            s, "customer", "bj-fuwai", {"competitor_views": 4}, source="test", now=utcnow()
        )
    assert [c.opened for c in opened] == [True] and opened[0].grant.user_id == "lisi"
    assert "已为中国医学科学院阜外医院办理调价 -12%" in own(await chat.say("lisi", "/price 阜外 -12"))
    assert "规则 competitor-price" in own(await chat.say("lisi", "/authority 阜外"))
    with session_scope(chat.engine) as s:
        closed = perms.set_tags(
            s, "customer", "bj-fuwai", {"competitor_views": 1}, source="test", now=utcnow()
        )
    assert [c.opened for c in closed] == [False]
    assert "超出了你当前的权限" in own(await chat.say("lisi", "/price 阜外 -11"))
    with Session(chat.engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog))]
    assert "grant.open" in actions and "grant.close" in actions


async def test_region_opinion_level_gives_region_reps_free_repair(chat: Chat) -> None:
    assert (
        "需审批"
        in own(await chat.say("chenchen", "/authority 鼓楼")).split("免费维修/换新：")[1].split("\n")[0]
    )
    from storage.db import session_scope

    with session_scope(chat.engine) as s:
        chat.service.permissions.set_tags(
            s, "region", "江苏", {"opinion_level": "red"}, source="t", now=utcnow()
        )
    assert "已为南京鼓楼医院办理免费维修/换新" in own(await chat.say("chenchen", "/repair 鼓楼 CT球管"))
    assert "已为苏州大学附属第一医院办理补偿包 200 元" in own(await chat.say("liuyang", "/comp 苏大附一 200"))
    # 北京 reps get nothing from 江苏's opinion level
    assert "超出了你当前的权限" in own(await chat.say("zhangsan", "/repair 协和"))


async def test_deny_rule_wins_over_every_grant(chat: Chat) -> None:
    from storage.db import session_scope

    with session_scope(chat.engine) as s:
        chat.service.permissions.set_tags(
            s, "customer", "bj-pku3", {"compliance_hold": True}, source="t", now=utcnow()
        )
    text = own(await chat.say("zhangsan", "/comp 北医三院 100"))
    assert "规则 compliance-hold 禁止" in text
    assert counts(chat.engine)["ActionLedger"] == 0


async def test_cap_denies_and_approval_cannot_exceed_it(chat: Chat) -> None:
    assert "硬上限 5000 元" in own(await chat.say("zhangsan", "/comp 北医三院 5000.01"))
    assert counts(chat.engine)["Approval"] == 0


async def test_approval_is_reauthorised_at_execution(chat: Chat) -> None:
    await chat.say("zhangsan", "/comp 北医三院 800")
    from storage.db import session_scope

    with session_scope(chat.engine) as s:  # a deny appears while the request waits
        chat.service.permissions.set_tags(
            s, "customer", "bj-pku3", {"compliance_hold": True}, source="t", now=utcnow()
        )
    done = await chat.press("wangjing", chat.buttons["wangjing"][0])
    assert "复核未通过" in own(done) and "compliance-hold" in own(done)
    assert "复核未通过" in own(done, "zhangsan")
    assert counts(chat.engine)["ActionLedger"] == 0


async def test_repeated_message_makes_one_request(chat: Chat) -> None:
    first = await chat.say("zhangsan", "/comp 北医三院 800 重复测试", message_id="m-1")
    second = await chat.say("zhangsan", "/comp 北医三院 800 重复测试", message_id="m-1")
    assert "已提交" in own(first) and "已经处理过" in own(second)
    assert not [r for r in second if r.to == "wangjing"]  # no second card
    assert counts(chat.engine)["Approval"] == 1


@pytest.mark.parametrize(
    "text,expected",
    [
        ("/comp 北医三院 -5", "不能为负数"),
        ("/comp 北医三院 0", "不能为 0"),
        ("/comp 北医三院 1e12", "超出合理范围"),
        ("/comp 北医三院 三百", "不是有效的数字"),
        ("/comp 北医三院 NaN", "不是有效的数字"),
        ("/comp 北医三院 12.345", "最多保留 2 位小数"),
        ("/comp 北医三院", "用法：/comp"),
        ("/comp 不存在医院 100", "没有找到客户"),
        ("/comp 积水潭 100", "不是你负责的客户"),
        ("/price 协和 abc", "不是有效的数字"),
        ("/warranty 协和 1.5", "最多保留 0 位小数"),
        ("/comp 医院 100", "对应多个客户"),
    ],
)
async def test_bad_input_gets_a_clear_message_and_no_state_change(
    chat: Chat, text: str, expected: str
) -> None:
    before = counts(chat.engine)
    assert expected in own(await chat.say("zhangsan", text))
    assert counts(chat.engine) == before


@pytest.mark.parametrize(
    "payload",
    ["approve:", "approve:abc", "approve:-1", "approve:1:2", "reject:9999999", "approve:" + "9" * 40],
)
async def test_malformed_or_stale_buttons_change_nothing(chat: Chat, payload: str) -> None:
    await chat.say("zhangsan", "/comp 北医三院 800")
    before = counts(chat.engine)
    text = own(await chat.press("wangjing", payload))
    assert "没有做任何改动" in text
    assert counts(chat.engine) == before


async def test_pending_and_audit_commands(chat: Chat) -> None:
    await chat.say("zhangsan", "/comp 北医三院 800 设备故障")
    pending = await chat.say("wangjing", "/pending")
    assert "待你审批的申请（1）" in own(pending) and "张三 · 北京大学第三医院 · 补偿包 800 元" in own(pending)
    assert "只对销售经理开放" in own(await chat.say("zhangsan", "/pending"))
    assert "没有待你审批的申请" in own(await chat.say("lihua", "/pending"))
    audit = own(await chat.say("zhangsan", "/audit 北医三院"))
    assert "提交审批" in audit and "决策" in audit and "开放授权" in audit
    assert "只有客户负责人及其上级" in own(await chat.say("lisi", "/audit 北医三院"))
    assert "决策" in own(await chat.say("zhoujh", "/audit bj-pku3"))


async def test_price_both_directions_and_plain_chinese_price(chat: Chat) -> None:
    assert "调价 -12%" in own(await chat.say("lisi", "给积水潭降价12%"))
    assert "调价 +2%" in own(await chat.say("zhangsan", "/price 协和 2"))
    assert "超出了你当前的权限" in own(await chat.say("zhangsan", "/price 协和 -4"))


async def test_plain_chinese_request_from_the_product_text(chat: Chat) -> None:
    replies = await chat.say("zhangsan", "给协和发300元补偿，因为交付延迟")
    assert "已提交给 王静 审批" in own(replies)
    card = next(r for r in replies if r.to == "wangjing")
    assert "北京协和医院" in card.text and "300 元" in card.text and "原因：交付延迟" in card.text
    with Session(chat.engine) as s:
        assert s.exec(select(ActionRequest)).one().reason == "交付延迟"


async def test_amount_above_the_managers_authority_goes_to_the_first_manager_who_covers_it(
    chat: Chat,
) -> None:
    replies = await chat.say("zhangsan", "/comp 北医三院 3000 重大客诉")
    assert "已提交给 周建华 审批" in own(replies)
    assert [r.to for r in replies if r.buttons] == ["zhoujh"]
    # nobody above the director: the first timeout expires it, and the rep is told
    notices = chat.service.process_due_approvals(utcnow() + timedelta(hours=4, seconds=1))
    assert any(n.to == "zhangsan" and "已过期" in n.text for n in notices)


async def test_pending_approvals_survive_a_restart(chat: Chat, tmp_path: Path) -> None:
    await chat.say("zhangsan", "/comp 北医三院 800")
    payload = chat.buttons["wangjing"][0]
    restarted = Chat(chat.engine, tmp_path)  # a new process: new router, service and rules holder
    assert "待你审批的申请（1）" in own(await restarted.say("wangjing", "/pending"))
    assert "你已批准" in own(await restarted.press("wangjing", payload))
