"""Chat commands for actions and approvals: /comp, /price, /repair, /warranty, plain Chinese requests,
/authority, /pending, /audit and the approve/reject buttons. Translates ``skills`` results to replies."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import texts
from bot.messages import Button, Reply
from bot.notices import notice_replies
from bot.router import Router, Turn
from bot.settings import Settings
from skills import texts as stexts
from skills.actions import ActionService, Result, fmt_limit, fmt_tags
from skills.engine import PermissionEngine
from skills.registry import SKILLS
from skills.rules import RulesHolder, parse_duration
from storage.lookup import customers_mentioned
from storage.models import Customer
from storage.types import utcnow

EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "examples" / "rules.yaml"
REQUESTERS = ("rep", "manager")
_NUMBER = r"[-+＋－−]?\s*[\d,，]*\.?\d+"

# "给协和发300元补偿，因为交付延迟" / "帮北医三院申请 500 元补偿包 原因：设备故障"
COMP_INTENT = (
    r"(?:给|为|帮)(?P<cust>[^，,。\s\d]{2,20}?)\s*(?:发放?|申请|办理|送|开)?\s*(?P<amount>"
    + _NUMBER
    + r")\s*(?:元|块钱?|rmb|RMB)?\s*(?:的)?\s*(?:补偿包?|优惠券|代金券|关怀包)"
    r"(?:[，,。;；\s]*(?:因为|原因[:：]?|理由[:：]?)\s*(?P<reason>.+))?"
)
# "给积水潭降价10%" / "积水潭调价 -12%"
PRICE_INTENT = (
    r"(?:给|为|帮)?(?P<cust>[^，,。\s\d]{2,20}?)\s*(?P<dir>降价|涨价|提价|调价)\s*(?P<pct>"
    + _NUMBER
    + r")\s*[%％]"
)


def build_service(settings: Settings, engine: Engine) -> ActionService:
    holder = RulesHolder(settings.rules_file or EXAMPLE_RULES)
    return ActionService(
        engine,
        PermissionEngine(holder),
        escalate_after=parse_duration(settings.approval_escalate_after),
        webhook_url=settings.action_webhook_url,
    )


def to_replies(result: Result) -> list[Reply]:
    return [Reply(result.text), *notice_replies(result.notices)]


def _key(turn: Turn) -> str | None:
    mid = turn.msg.ref.get("message_id") or turn.msg.ref.get("msg_id")
    return f"{turn.msg.channel}:{turn.msg.account}:{mid}" if mid else None


def register_actions(router: Router, settings: Settings, engine: Engine) -> ActionService:
    """Register every action command and button; returns the service (the scheduler calls
    ``service.process_due_approvals(now)`` periodically)."""
    service = build_service(settings, engine)

    async def run_request(turn: Turn, skill: str, customer: str, params: dict) -> list[Reply]:
        result = await asyncio.to_thread(
            service.request, turn.user.id, skill, customer, params, key=_key(turn)
        )
        if result.status == "executed":
            await asyncio.to_thread(service.deliver_outbox)
        return to_replies(result)

    def usage(name: str) -> Reply:
        return Reply(texts.ACTION_USAGE[name])

    def request_command(name: str, summary: str, usage_text: str, skill: str, param: str | None,
                        extra: str = "reason") -> None:
        """``/name 客户 <param> [extra]``; ``param`` None means ``/name 客户 [extra]``."""
        needed = 2 if param else 1

        async def handler(turn: Turn) -> list[Reply] | Reply:
            parts = turn.args.split(maxsplit=needed)
            if len(parts) < needed:
                return usage(name)
            params = {param: parts[1]} if param else {}
            params[extra] = parts[needed] if len(parts) > needed else ""
            return await run_request(turn, skill, parts[0], params)

        router.command(name, summary, roles=REQUESTERS, usage=usage_text)(handler)

    request_command("comp", "为客户申请补偿包（元）", "客户 金额 [原因]", "compensation", "amount")
    request_command("price", "为客户的报价调价（百分比，可正可负）", "客户 百分比 [原因]",
                    "price_adjust", "percent")
    request_command("repair", "为客户申请免费维修或换新", "客户 [设备/原因]", "free_repair", None,
                    extra="item")
    request_command("warranty", "为客户申请延保（月）", "客户 月数 [原因]", "extended_warranty", "months")

    @router.intent(COMP_INTENT, roles=REQUESTERS)
    async def comp_text(turn: Turn) -> list[Reply]:
        m = turn.match
        assert m is not None
        return await run_request(
            turn,
            "compensation",
            _customer_in(engine, m.group("cust")),
            {"amount": m.group("amount").replace(" ", ""), "reason": (m.group("reason") or "").strip(" 。")},
        )

    @router.intent(PRICE_INTENT, roles=REQUESTERS)
    async def price_text(turn: Turn) -> list[Reply]:
        m = turn.match
        assert m is not None
        pct = m.group("pct").replace(" ", "")
        if m.group("dir") == "降价" and not pct.startswith(("-", "－", "−")):
            pct = "-" + pct.lstrip("+＋")
        return await run_request(
            turn, "price_adjust", _customer_in(engine, m.group("cust")), {"percent": pct}
        )

    @router.command("authority", "查看我现在能做什么、依据是什么", usage="[客户]")
    async def authority(turn: Turn) -> list[Reply]:
        if turn.args.strip():
            await asyncio.to_thread(service.sync_for, turn.user.id, turn.args.strip(), utcnow())
        text = await asyncio.to_thread(authority_text, service, turn.user.id, turn.args.strip(), utcnow())
        return [Reply(text)]

    @router.command("pending", "查看待我审批的申请", roles=["manager"])
    async def pending(turn: Turn) -> list[Reply] | Reply:
        rows = service.pending_for(turn.user.id)
        if not rows:
            return Reply(stexts.PENDING_NONE)
        out = [Reply(stexts.PENDING_HEAD.format(n=len(rows)))]
        with Session(engine) as session:
            for approval, req in rows:
                skill = SKILLS[req.skill]
                customer = session.get(Customer, req.customer_id)
                rep = router.directory.get(req.requester_id)
                from skills.actions import action_text

                out.append(
                    Reply(
                        stexts.PENDING_LINE.format(
                            id=approval.id,
                            rep=rep.name if rep else req.requester_id,
                            customer=customer.name if customer else req.customer_id,
                            action=action_text(skill, req.params),
                            at=f"{approval.created_at:%m-%d %H:%M}",
                        ),
                        buttons=(
                            (
                                Button(stexts.APPROVE, f"approve:{approval.id}"),
                                Button(stexts.REJECT, f"reject:{approval.id}"),
                            ),
                        ),
                    )
                )
        return out

    @router.command("audit", "查看客户最近的决策、审批和执行记录", usage="客户")
    async def audit(turn: Turn) -> Reply:
        if not turn.args.strip():
            return Reply(texts.ACTION_USAGE["audit"])
        with Session(engine) as session:
            found = service.resolve_customer(session, turn.args.strip())
            if isinstance(found, str):
                return Reply(found)
            if not service.is_manager_of(session, turn.user, found):
                return Reply(stexts.AUDIT_NOT_ALLOWED.format(customer=found.name))
        entries = service.audit_for(found)
        if not entries:
            return Reply(stexts.AUDIT_NONE.format(customer=found.name))
        lines = [stexts.AUDIT_HEAD.format(customer=found.name)]
        for e in entries:
            lines.append(
                f"{e.at:%m-%d %H:%M} {e.actor} {texts.AUDIT_ACTIONS.get(e.action, e.action)} "
                f"{_audit_detail(e.detail)}"
            )
        return Reply("\n".join(lines))

    async def press(turn: Turn, approve: bool) -> list[Reply] | Reply:
        raw = turn.args.strip()
        if not re.fullmatch(r"\d{1,12}", raw):
            return Reply(texts.BUTTON_MALFORMED)
        result = await asyncio.to_thread(service.decide_approval, turn.user.id, int(raw), approve)
        if result.status == "executed":
            await asyncio.to_thread(service.deliver_outbox)
        return to_replies(result)

    @router.button("approve")
    async def approve(turn: Turn) -> list[Reply] | Reply:
        return await press(turn, True)

    @router.button("reject")
    async def reject(turn: Turn) -> list[Reply] | Reply:
        return await press(turn, False)

    return service


def _customer_in(engine: Engine, text: str) -> str:
    """The customer a free-text fragment names ("协和" in "给协和发..."), else the fragment itself."""
    with Session(engine) as session:
        found = customers_mentioned(session, text)
    return found[0].id if len(found) == 1 else text


def _audit_detail(detail: dict) -> str:
    keys = (
        "request_id",
        "approval_id",
        "skill",
        "amount",
        "reference",
        "outcome",
        "reason",
        "rule",
        "capability",
        "limit",
        "user",
        "to",
        "why",
        "authorised_by",
    )
    return " ".join(f"{k}={detail[k]}" for k in keys if detail.get(k) not in (None, "", [], {}))


def authority_text(service: ActionService, user_id: str, query: str, now: datetime) -> str:
    """What ``user_id`` may do now (for a customer, if given) and why: the same engine as real requests."""
    perms = service.permissions
    rules = perms.rules
    with Session(service.engine) as session:
        from storage.models import User

        user = session.get(User, user_id)
        customer = None
        if query:
            found = service.resolve_customer(session, query)
            if isinstance(found, str):
                return found
            customer = found
        lines = [
            stexts.AUTH_HEADER.format(name=user.name, customer=customer.name)
            if customer
            else stexts.AUTH_HEADER_ALL.format(name=user.name)
        ]
        ctx = perms.context(session, customer, rules) if customer else None
        grants = []
        for skill in SKILLS.values():
            cap = skill.capability
            if customer is not None:
                d = perms.decide(
                    session,
                    user,
                    customer,
                    cap,
                    None if not skill.amount_param else rules.caps.get(cap),
                    now,
                    rules=rules,
                    ctx=ctx,
                )
                if d.reason == "deny_rule":
                    what = stexts.AUTH_DENIED.format(rules="、".join(r for r, _ in d.denied_by))
                else:
                    what = service.authority_text(d, skill)
                sources = d.sources
            else:
                sources = tuple(perms.sources(session, rules, user, None, cap, now))
                from skills.engine import decide

                what = service.authority_text(
                    decide(cap, None, cap=None, amount_capability=False, denied_by=(), sources=sources), skill
                )
            if cap in rules.caps:
                what += stexts.AUTH_CAP.format(cap=fmt_limit(cap, rules.caps[cap]))
            lines.append(stexts.AUTH_LINE.format(cap=skill.title, what=what))
            grants += [(cap, s) for s in sources if s.kind == "grant"]
        if grants:
            lines.append(stexts.AUTH_GRANTS)
            for cap, s in grants:
                limit = fmt_limit(cap, s.limit)
                lines.append(
                    stexts.AUTH_GRANT.format(
                        rule=s.name,
                        limit=f"{stexts.CAP_NAMES.get(cap, cap)} {limit}".strip(),
                        free="免审批" if s.approval_free else "（需审批）",
                        until=f"，至 {s.ends_at:%m-%d %H:%M} UTC" if s.ends_at else "",
                        uses=f"，剩 {s.uses_left} 次" if s.uses_left is not None else "",
                        tags=fmt_tags(s.basis),
                    )
                )
        else:
            lines.append(stexts.AUTH_NO_GRANTS)
    return "\n".join(lines)
