"""Carrying out actions: request -> decision -> execution or approval -> at most one execution.

Every entry point returns a ``Result``: text for the person who asked plus ``Notice``s for other
people (the approval card, the rep told of a decision). Nothing here knows about chat channels;
``bot.handlers_actions`` turns these into replies.

At most once: a request has a unique idempotency key; an approval is decided by one conditional
UPDATE (pending -> decided) that only one caller can win; the ledger has a unique request id; a
grant use is consumed with a conditional UPDATE in the same transaction as the execution.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from skills import texts
from skills.engine import ALLOW, APPROVAL, Decision, GrantChange, PermissionEngine
from skills.outbox import OutboxSender
from skills.registry import SKILLS, ParamError, Skill
from storage.db import session_scope
from storage.lookup import find_customers
from storage.models import (
    ActionLedger,
    ActionRequest,
    Approval,
    AuditLog,
    Customer,
    Grant,
    Outbox,
    Role,
    User,
)
from storage.types import utcnow

log = logging.getLogger(__name__)
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Notice:
    """A message for another org user; ``buttons`` are (label, payload) rows."""

    to: str
    text: str
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()


@dataclass
class Result:
    text: str
    notices: list[Notice] = field(default_factory=list)
    status: str = ""  # executed | pending | denied | rejected | expired | blocked | refused | duplicate
    request_id: int | None = None
    reference: str | None = None


def new_reference(skill: Skill, now: datetime) -> str:
    return f"{skill.ref_prefix}-{now:%Y%m%d}-{''.join(secrets.choice(_ALPHABET) for _ in range(6))}"


def fmt_amount(skill: Skill, amount: Decimal | str | None) -> str:
    if amount is None:
        return ""
    value = Decimal(str(amount))
    text = f"{value.normalize():f}"
    if skill.unit == "%":
        return f" {'+' if value > 0 else ''}{text}%"
    return f" {text} {skill.unit}"


def action_text(skill: Skill, params: dict[str, Any]) -> str:
    """补偿包 300 元 / 调价 -12% / 免费维修/换新（CT 球管）."""
    amount = params.get(skill.amount_param) if skill.amount_param else None
    item = params.get("item")
    return texts.ACTION.format(skill=skill.title, amount=fmt_amount(skill, amount)) + (
        f"（{item}）" if item else ""
    )


def fmt_limit(capability: str, limit: Decimal | None) -> str:
    from skills.registry import CAPABILITIES

    if limit is None:
        return ""
    unit = CAPABILITIES.get(capability, "")
    text = f"{Decimal(limit).normalize():f}"
    return f"±{text}%" if unit == "%" else f"{text} {unit}".strip()


def fmt_tags(tags: dict[str, Any]) -> str:
    return "，".join(f"{k}={v}" for k, v in tags.items()) or "—"


def basis_text(decision: Decision) -> str:
    """本次授权依据: 规则 bad-review-care（customer.nps=-20，...）. For an allow: the source used."""

    def one(s: Any) -> str:
        limit = fmt_limit(decision.capability, s.limit)
        if s.kind == "grant":
            return f"规则 {s.name}（{fmt_tags(s.basis)}）" + (f"，额度 {limit}" if limit else "")
        return ("角色基线" if s.kind == "role" else "个人基线") + (f" {limit}" if limit else "")

    if decision.outcome == ALLOW:
        used = decision.consume or min(
            (s for s in decision.sources if s.approval_free and s.covers(decision.amount)),
            key=lambda s: s.sort_key(),
        )
        return one(used)
    grants = [one(s) for s in decision.sources if s.kind == "grant"]
    return "；".join(grants) or "无数据授权，只有角色基线"


class ActionService:
    def __init__(
        self,
        engine: Engine,
        permissions: PermissionEngine,
        *,
        escalate_after: timedelta = timedelta(hours=4),
        webhook_url: str | None = None,
        sender: OutboxSender | None = None,
    ):
        self.engine = engine
        self.permissions = permissions
        self.escalate_after = escalate_after
        self.sender = sender or (OutboxSender(webhook_url) if webhook_url else None)

    # helpers -------------------------------------------------------------------------------
    def resolve_customer(self, session: Session, query: str) -> Customer | str:
        found = find_customers(session, query)
        if not found:
            return texts.UNKNOWN_CUSTOMER.format(query=query)
        if len(found) > 1:
            return texts.AMBIGUOUS_CUSTOMER.format(query=query, names="、".join(c.name for c in found[:5]))
        return found[0]

    def may_act_for(self, session: Session, user: User, customer: Customer) -> bool:
        """The owning rep, or a manager above the owner."""
        if customer.owner_id == user.id:
            return True
        owner = session.get(User, customer.owner_id)
        return owner is not None and any(m.id == user.id for m in self.permissions.chain(session, owner))

    def authority_text(self, decision: Decision, skill: Skill) -> str:
        if not decision.has_capability or decision.authority == 0:
            return texts.AUTH_NONE
        free = [s for s in decision.sources if s.approval_free and s.limit != 0]
        if free:
            best = max(free, key=lambda s: (s.limit is None, s.limit or 0))
            if best.limit is None:
                return texts.AUTH_YES
            return texts.AUTH_FREE.format(limit=fmt_limit(skill.capability, best.limit))
        return texts.AUTH_NEEDS.format(limit=fmt_limit(skill.capability, decision.authority))

    def sync_for(self, user_id: str, customer_query: str, now: datetime) -> list[Notice]:
        """Bring the grants for one customer (and its region) up to date, as a request would."""
        with session_scope(self.engine) as session:
            found = self.resolve_customer(session, customer_query)
            if isinstance(found, str):
                return []
            changes = self.permissions.sync_region(session, found.region, now, actor=user_id)
            changes += self.permissions.sync_customer(session, found, now, actor=user_id)
            return self.grant_notices(session, changes)

    # requests ------------------------------------------------------------------------------
    def request(
        self,
        user_id: str,
        skill_name: str,
        customer_query: str,
        raw: dict[str, Any],
        *,
        key: str | None = None,
        now: datetime | None = None,
    ) -> Result:
        """Ask for an action. Bad input -> a clear message and no state change."""
        now = now or utcnow()
        skill = SKILLS.get(skill_name)
        if skill is None:
            return Result(texts.UNKNOWN_SKILL.format(skill=skill_name), status="refused")
        try:
            params = skill.validate(raw)
        except ParamError as exc:
            return Result(str(exc), status="refused")
        amount = skill.amount(params)
        with Session(self.engine) as session:
            user = session.get(User, user_id)
            found = self.resolve_customer(session, customer_query)
            if user is None:
                return Result(texts.UNKNOWN_SKILL.format(skill=skill_name), status="refused")
            if isinstance(found, str):
                return Result(found, status="refused")
            if not self.may_act_for(session, user, found):
                owner = session.get(User, found.owner_id)
                return Result(
                    texts.NOT_YOUR_CUSTOMER.format(
                        customer=found.name, owner=owner.name if owner else found.owner_id
                    ),
                    status="refused",
                )
            customer_id = found.id
        key = key or self.default_key(user_id, skill.name, customer_id, params, now)
        for _attempt in range(5):
            try:
                return self._request_tx(user_id, skill, customer_id, params, amount, key, now)
            except _Retry:
                continue
            except IntegrityError:
                if self._known_key(key):
                    break  # a concurrent duplicate won the unique idempotency key
                continue  # a concurrent request opened the same grant first: decide again
        return self._duplicate(key)

    def _known_key(self, key: str) -> bool:
        with Session(self.engine) as session:
            return (
                session.exec(select(ActionRequest.id).where(ActionRequest.idempotency_key == key)).first()
                is not None
            )

    @staticmethod
    def default_key(user_id: str, skill: str, customer_id: str, params: dict[str, Any], now: datetime) -> str:
        """Without a platform message id: the same request within 10 minutes is the same request."""
        bucket = int(now.timestamp()) // 600
        raw = f"{user_id}|{skill}|{customer_id}|{sorted(params.items())}|{bucket}"
        return "auto:" + hashlib.sha256(raw.encode()).hexdigest()[:32]

    def _duplicate(self, key: str) -> Result:
        with Session(self.engine) as session:
            req = session.exec(select(ActionRequest).where(ActionRequest.idempotency_key == key)).first()
        if req is None:
            return Result(texts.DUPLICATE.format(id="?", status="?"), status="duplicate")
        return Result(
            texts.DUPLICATE.format(id=req.id, status=texts.STATUS.get(req.status, req.status)),
            status="duplicate",
            request_id=req.id,
            reference=req.reference,
        )

    def _request_tx(
        self,
        user_id: str,
        skill: Skill,
        customer_id: str,
        params: dict[str, Any],
        amount: Decimal | None,
        key: str,
        now: datetime,
    ) -> Result:
        perms = self.permissions
        rules = perms.rules
        with session_scope(self.engine) as session:
            if session.exec(select(ActionRequest.id).where(ActionRequest.idempotency_key == key)).first():
                raise IntegrityError("duplicate", None, Exception("idempotency key"))
            user = session.get(User, user_id)
            customer = session.get(Customer, customer_id)
            assert user is not None and customer is not None
            changes = perms.sync_region(session, customer.region, now, actor=user_id, rules=rules)
            changes += perms.sync_customer(session, customer, now, actor=user_id, rules=rules)
            decision = perms.decide(session, user, customer, skill.capability, amount, now, rules=rules)
            action = action_text(skill, params)
            req = ActionRequest(
                idempotency_key=key,
                requester_id=user_id,
                skill=skill.name,
                customer_id=customer.id,
                params=params,
                amount=amount,
                status="denied",
                basis={**decision.basis(), "rules_digest": rules.digest},
                reason=str(params.get("reason", "")),
                created_at=now,
                updated_at=now,
            )
            session.add(req)
            session.flush()
            subject = f"customer:{customer.id}"
            session.add(
                AuditLog(
                    at=now,
                    actor=user_id,
                    action="decision",
                    subject=subject,
                    detail={"request_id": req.id, "skill": skill.name, "params": params, **decision.basis()},
                )
            )
            notices = self.grant_notices(session, changes)
            if decision.outcome == ALLOW:
                if decision.consume is not None and not perms.consume(session, decision.consume):
                    raise _Retry  # another execution used the grant's last use: decide again
                reference = self._execute(session, req, skill, customer, user_id, user_id, now)
                return Result(
                    texts.EXECUTED.format(
                        customer=customer.name,
                        action=action,
                        reference=reference,
                        why=texts.WHY_ALLOWED.format(basis=basis_text(decision)),
                    ),
                    notices,
                    "executed",
                    req.id,
                    reference,
                )
            if decision.outcome == APPROVAL:
                approver = perms.find_approver(session, user, customer, skill.capability, amount, now)
                if approver is not None:
                    req.status = "pending"
                    session.add(req)
                    approval = Approval(
                        request_id=req.id,
                        approver_id=approver.id,
                        level=1,
                        escalate_at=now + self.escalate_after,
                        created_at=now,
                    )
                    session.add(approval)
                    session.flush()
                    session.add(
                        AuditLog(
                            at=now,
                            actor=user_id,
                            action="approval.create",
                            subject=subject,
                            detail={
                                "request_id": req.id,
                                "approval_id": approval.id,
                                "approver": approver.id,
                            },
                        )
                    )
                    notices.append(self.card(session, approval, req, skill, user, customer, decision))
                    return Result(
                        texts.SENT_FOR_APPROVAL.format(
                            action=action,
                            authority=self.authority_text(decision, skill),
                            approver=approver.name,
                            id=approval.id,
                        ),
                        notices,
                        "pending",
                        req.id,
                    )
                return Result(texts.DENIED_NO_APPROVER.format(action=action), notices, "denied", req.id)
            if decision.reason == "deny_rule":
                errors = [e for _, e in decision.denied_by if e]
                return Result(
                    texts.DENIED_RULE.format(
                        customer=customer.name,
                        action=action,
                        rules="、".join(r for r, _ in decision.denied_by),
                        error=f"（条件无法求值，按禁止处理：{errors[0]}）" if errors else "",
                    ),
                    notices,
                    "denied",
                    req.id,
                )
            return Result(
                texts.DENIED_CAP.format(
                    customer=customer.name,
                    action=action,
                    cap_name=skill.title,
                    cap=fmt_limit(skill.capability, decision.cap),
                ),
                notices,
                "denied",
                req.id,
            )

    def card(
        self,
        session: Session,
        approval: Approval,
        req: ActionRequest,
        skill: Skill,
        rep: User,
        customer: Customer,
        decision: Decision,
        escalated_from: User | None = None,
    ) -> Notice:
        text = texts.CARD.format(
            id=approval.id,
            rep=rep.name,
            customer=customer.name,
            action=action_text(skill, req.params),
            reason=req.reason or "—",
            authority=self.authority_text(decision, skill),
            basis=basis_text(decision)
            + "；客户标签 "
            + fmt_tags(
                {
                    k: v
                    for k, v in customer.tags.items()
                    if k in {t.split(".", 1)[1] for t in self.permissions.rules.tag_types}
                }
            ),
            cap=fmt_limit(skill.capability, decision.cap) or "—",
        )
        if escalated_from is not None:
            text += "\n" + texts.CARD_ESCALATED.format(old=escalated_from.name)
        buttons = (((texts.APPROVE, f"approve:{approval.id}"), (texts.REJECT, f"reject:{approval.id}")),)
        return Notice(approval.approver_id, text, buttons)

    def _execute(
        self,
        session: Session,
        req: ActionRequest,
        skill: Skill,
        customer: Customer,
        executed_by: str,
        authorised_by: str,
        now: datetime,
    ) -> str:
        """Ledger row (unique per request) + outbox row + request status, in the caller's transaction."""
        reference = new_reference(skill, now)
        session.add(
            ActionLedger(
                request_id=req.id,
                reference=reference,
                skill=skill.name,
                customer_id=customer.id,
                amount=req.amount,
                params=req.params,
                executed_by=executed_by,
                authorised_by=authorised_by,
                executed_at=now,
            )
        )
        req.status, req.reference, req.updated_at = "executed", reference, now
        session.add(req)
        payload = {
            "reference": reference,
            "skill": skill.name,
            "customer_id": customer.id,
            "customer_name": customer.name,
            "amount": _plain(req.amount),
            "unit": skill.unit,
            "params": req.params,
            "requested_by": req.requester_id,
            "authorised_by": authorised_by,
            "executed_at": now.isoformat(),
        }
        session.add(
            Outbox(
                idempotency_key=f"action-{reference}",
                payload=payload,
                next_attempt_at=now,
                status="queued" if self.sender else "ledger_only",
            )
        )
        session.flush()
        session.add(
            AuditLog(
                at=now,
                actor=executed_by,
                action="execute",
                subject=f"customer:{customer.id}",
                detail={
                    "request_id": req.id,
                    "reference": reference,
                    "skill": skill.name,
                    "amount": _plain(req.amount),
                    "authorised_by": authorised_by,
                },
            )
        )
        return reference

    def deliver_outbox(self, now: datetime | None = None) -> tuple[int, int]:
        if self.sender is None:
            return (0, 0)
        return self.sender.deliver_due(self.engine, now or utcnow())

    def grant_notices(self, session: Session, changes: list[GrantChange]) -> list[Notice]:
        out = []
        for change in changes:
            g: Grant = change.grant
            scope = session.get(Customer, g.customer_id).name if g.customer_id else f"{g.region}区域客户"
            if change.opened:
                until = f"，至 {g.ends_at:%m-%d %H:%M} UTC" if g.ends_at else ""
                out.append(
                    Notice(
                        g.user_id,
                        texts.GRANT_OPENED.format(
                            rule=g.rule_id,
                            cap=texts.CAP_NAMES.get(g.capability, g.capability),
                            limit=f" {fmt_limit(g.capability, g.limit)}" if g.limit is not None else "",
                            scope=scope,
                            until=until,
                            tags=fmt_tags(g.basis.get("tags", {})),
                        ),
                    )
                )
            else:
                out.append(
                    Notice(
                        g.user_id,
                        texts.GRANT_CLOSED.format(
                            rule=g.rule_id,
                            cap=texts.CAP_NAMES.get(g.capability, g.capability),
                            scope=scope,
                            reason=texts.CLOSE_REASONS.get(g.close_reason or "", g.close_reason),
                        ),
                    )
                )
        return out

    # approvals -----------------------------------------------------------------------------
    def decide_approval(
        self, user_id: str, approval_id: int, approve: bool, *, now: datetime | None = None
    ) -> Result:
        now = now or utcnow()
        with Session(self.engine) as session:
            approval = session.get(Approval, approval_id)
            presser = session.get(User, user_id)
            if approval is None or presser is None:
                return Result(texts.APPROVAL_NOT_FOUND.format(id=approval_id), status="refused")
            designated = session.get(User, approval.approver_id)
            allowed = {approval.approver_id} | {m.id for m in self.permissions.chain(session, designated)}
            if user_id not in allowed:
                return Result(
                    texts.APPROVAL_NOT_YOURS.format(
                        id=approval_id, approver=designated.name if designated else approval.approver_id
                    ),
                    status="refused",
                )
            if approval.status != "pending":
                return self._already(session, approval)
        new_status = "approved" if approve else "rejected"
        with session_scope(self.engine) as session:
            won = (
                session.execute(
                    update(Approval)
                    .where(Approval.id == approval_id, Approval.status == "pending")
                    .values(status=new_status, decided_by=user_id, decided_at=now)
                ).rowcount
                == 1
            )
            if not won:
                session.rollback()
            else:
                return self._after_decision(session, approval_id, user_id, approve, now)
        with Session(self.engine) as session:
            return self._already(session, session.get(Approval, approval_id))

    def _already(self, session: Session, approval: Approval) -> Result:
        by = session.get(User, approval.decided_by) if approval.decided_by else None
        return Result(
            texts.APPROVAL_ALREADY.format(
                id=approval.id,
                status=texts.STATUS.get(approval.status, approval.status),
                by=by.name if by else "系统",
            ),
            status="duplicate",
            request_id=approval.request_id,
        )

    def _after_decision(
        self, session: Session, approval_id: int, user_id: str, approve: bool, now: datetime
    ) -> Result:
        approval = session.get(Approval, approval_id)
        req = session.get(ActionRequest, approval.request_id)
        skill = SKILLS[req.skill]
        customer = session.get(Customer, req.customer_id)
        rep = session.get(User, req.requester_id)
        decider = session.get(User, user_id)
        subject = f"customer:{customer.id}"
        action = action_text(skill, req.params)
        session.add(
            AuditLog(
                at=now,
                actor=user_id,
                action="approval.approve" if approve else "approval.reject",
                subject=subject,
                detail={"approval_id": approval.id, "request_id": req.id, "designated": approval.approver_id},
            )
        )
        others = (
            [
                Notice(
                    approval.approver_id,
                    texts.TOLD_OTHER_DECIDED.format(
                        id=approval.id, by=decider.name, status="批准" if approve else "拒绝"
                    ),
                )
            ]
            if approval.approver_id != user_id
            else []
        )
        if not approve:
            req.status, req.updated_at = "rejected", now
            session.add(req)
            return Result(
                texts.REJECTED_DONE.format(
                    id=approval.id, rep=rep.name, customer=customer.name, action=action
                ),
                [
                    Notice(
                        rep.id,
                        texts.TOLD_REJECTED.format(
                            approver=decider.name, id=approval.id, customer=customer.name, action=action
                        ),
                    ),
                    *others,
                ],
                "rejected",
                req.id,
            )
        why = self.reauthorise(session, decider, customer, skill, req.amount, now)
        if why is not None:
            req.status, req.updated_at = "blocked", now
            session.add(req)
            session.add(
                AuditLog(
                    at=now,
                    actor=user_id,
                    action="execute.blocked",
                    subject=subject,
                    detail={"request_id": req.id, "why": why},
                )
            )
            return Result(
                texts.APPROVED_BLOCKED.format(id=approval.id, why=why),
                [
                    Notice(rep.id, texts.TOLD_BLOCKED.format(approver=decider.name, id=approval.id, why=why)),
                    *others,
                ],
                "blocked",
                req.id,
            )
        reference = self._execute(session, req, skill, customer, req.requester_id, user_id, now)
        return Result(
            texts.APPROVED_DONE.format(
                id=approval.id, customer=customer.name, action=action, reference=reference
            ),
            [
                Notice(
                    rep.id,
                    texts.TOLD_APPROVED.format(
                        approver=decider.name,
                        id=approval.id,
                        customer=customer.name,
                        action=action,
                        reference=reference,
                    ),
                ),
                *others,
            ],
            "executed",
            req.id,
            reference,
        )

    def reauthorise(
        self,
        session: Session,
        approver: User,
        customer: Customer,
        skill: Skill,
        amount: Decimal | None,
        now: datetime,
    ) -> str | None:
        """At execution time: deny rules, the cap and the approver's authority still apply."""
        perms = self.permissions
        rules = perms.rules
        ctx = perms.context(session, customer, rules)
        hits = perms.deny_hits(rules, ctx, skill.capability)
        if hits:
            return texts.BLOCK_DENY.format(rules="、".join(r for r, _ in hits))
        cap = rules.caps.get(skill.capability)
        if skill.amount_param and (cap is None or amount is None or amount > cap):
            return texts.BLOCK_CAP.format(cap=fmt_limit(skill.capability, cap))
        if not perms.can_approve(session, rules, approver, customer, skill.capability, amount, now):
            return texts.BLOCK_AUTHORITY
        return None

    # timeouts ------------------------------------------------------------------------------
    def process_due_approvals(self, now: datetime | None = None) -> list[Notice]:
        """Escalate pending approvals past their deadline once up the chain, then expire them.
        Safe to call from several schedulers at once: every step is a conditional UPDATE."""
        now = now or utcnow()
        with Session(self.engine) as session:
            due = list(
                session.exec(
                    select(Approval)
                    .where(Approval.status == "pending", col(Approval.escalate_at) <= now)
                    .order_by(col(Approval.id))
                )
            )
        notices: list[Notice] = []
        for approval in due:
            notices += self._timeout(approval, now)
        self.deliver_outbox(now)
        return notices

    def _timeout(self, approval: Approval, now: datetime) -> list[Notice]:
        with session_scope(self.engine) as session:
            req = session.get(ActionRequest, approval.request_id)
            skill = SKILLS[req.skill]
            customer = session.get(Customer, req.customer_id)
            rep = session.get(User, req.requester_id)
            old = session.get(User, approval.approver_id)
            action = action_text(skill, req.params)
            nxt = None
            if approval.level == 1:
                nxt = self.permissions.find_approver(
                    session, rep, customer, skill.capability, req.amount, now, above=old
                )
            if nxt is not None:
                won = (
                    session.execute(
                        update(Approval)
                        .where(Approval.id == approval.id, Approval.status == "pending", Approval.level == 1)
                        .values(approver_id=nxt.id, level=2, escalate_at=now + self.escalate_after)
                    ).rowcount
                    == 1
                )
                if not won:
                    return []
                session.add(
                    AuditLog(
                        at=now,
                        actor="system",
                        action="approval.escalate",
                        subject=f"customer:{customer.id}",
                        detail={"approval_id": approval.id, "from": old.id, "to": nxt.id},
                    )
                )
                fresh = session.get(Approval, approval.id)
                session.refresh(fresh)
                decision = self.permissions.decide(session, rep, customer, skill.capability, req.amount, now)
                return [
                    self.card(session, fresh, req, skill, rep, customer, decision, escalated_from=old),
                    Notice(rep.id, texts.TOLD_ESCALATED.format(id=approval.id, old=old.name, new=nxt.name)),
                    Notice(old.id, texts.TOLD_ESCALATED_OLD.format(id=approval.id, new=nxt.name)),
                ]
            won = (
                session.execute(
                    update(Approval)
                    .where(
                        Approval.id == approval.id,
                        Approval.status == "pending",
                        Approval.level == approval.level,
                    )
                    .values(status="expired", decided_at=now)
                ).rowcount
                == 1
            )
            if not won:
                return []
            req.status, req.updated_at = "expired", now
            session.add(req)
            session.add(
                AuditLog(
                    at=now,
                    actor="system",
                    action="approval.expire",
                    subject=f"customer:{customer.id}",
                    detail={"approval_id": approval.id, "request_id": req.id},
                )
            )
            return [
                Notice(
                    rep.id, texts.TOLD_EXPIRED.format(id=approval.id, customer=customer.name, action=action)
                ),
                Notice(old.id, texts.TOLD_EXPIRED_APPROVER.format(id=approval.id)),
            ]

    # read-only views -----------------------------------------------------------------------
    def pending_for(self, user_id: str) -> list[tuple[Approval, ActionRequest]]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(Approval, ActionRequest)
                .join(ActionRequest, col(ActionRequest.id) == Approval.request_id)
                .where(Approval.approver_id == user_id, Approval.status == "pending")
                .order_by(col(Approval.id))
            )
            return list(rows)

    def audit_for(self, customer: Customer, limit: int = 10) -> list[AuditLog]:
        with Session(self.engine) as session:
            subjects = [f"customer:{customer.id}", f"region:{customer.region}"]
            return list(
                session.exec(
                    select(AuditLog)
                    .where(col(AuditLog.subject).in_(subjects))
                    .order_by(col(AuditLog.id).desc())
                    .limit(limit)
                )
            )

    def is_manager_of(self, session: Session, user: User, customer: Customer) -> bool:
        return user.role == Role.admin or self.may_act_for(session, user, customer)


def _plain(amount: Decimal | None) -> str | None:
    """300 for 300.0000 (PostgreSQL NUMERIC(18,4)) and 300 (SQLite): one spelling in payloads and audit."""
    return None if amount is None else f"{Decimal(amount).normalize():f}"


class _Retry(Exception):
    pass
