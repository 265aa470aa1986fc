"""The permission engine: decide allow / needs approval / deny, and open and close grants.

``decide()`` is a pure function of its inputs (deny hits, cap, sources of authority, amount), so
``/authority``, ``rules simulate`` and the real request path all give the same answer, and the
property tests can drive it directly. ``PermissionEngine`` reads the database around it: the tags
of a customer and its region, the grants in force, the role baselines, the approver chain.

Semantics (see PERMISSIONS.md): deny rules win (an erroring deny counts as firing); then the hard
cap; then authority = the LARGEST limit among the role baseline and the active grants (never the
sum); within authority and approval-free -> allow, consuming one use of the tightest sufficient
grant (smallest limit, then earliest expiry); otherwise -> approval up the manager chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from skills.conditions import EvalContext, Outcome
from skills.rules import Permit, Rule, RuleSet
from storage.models import AuditLog, Customer, Grant, Role, SubjectTags, TagChange, User

ALLOW, APPROVAL, DENY = "allow", "approval", "deny"
_FAR = datetime.max.replace(tzinfo=None)


@dataclass(frozen=True)
class Source:
    """One place authority comes from: a role or personal baseline, or a grant."""

    kind: str  # role | user | grant
    name: str  # "角色基线 rep", rule id ...
    limit: Decimal | None  # None: a yes/no capability (free repair)
    approval_free: bool
    ends_at: datetime | None = None
    grant_id: int | None = None
    uses_left: int | None = None
    basis: dict[str, Any] = field(default_factory=dict)

    def covers(self, amount: Decimal | None) -> bool:
        return amount is None or self.limit is None or amount <= self.limit

    def sort_key(self) -> tuple[Decimal, datetime, int]:
        limit = self.limit if self.limit is not None else Decimal("Infinity")
        ends = self.ends_at.replace(tzinfo=None) if self.ends_at else _FAR
        return (limit, ends, self.grant_id if self.grant_id is not None else -1)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "limit": _s(self.limit),
            "approval_free": self.approval_free,
            "grant_id": self.grant_id,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "uses_left": self.uses_left,
            "tags": self.basis,
        }


@dataclass(frozen=True)
class Decision:
    outcome: str  # allow | approval | deny
    capability: str
    amount: Decimal | None
    reason: str  # deny_rule | cap | no_authority | within_authority | above_authority | not_approval_free
    authority: Decimal | None = (
        None  # the largest limit in force (None with has_capability = unlimited yes/no)
    )
    has_capability: bool = False
    cap: Decimal | None = None
    consume: Source | None = None
    denied_by: tuple[tuple[str, str | None], ...] = ()  # (rule id, evaluation error or None)
    sources: tuple[Source, ...] = ()

    def basis(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "capability": self.capability,
            "amount": _s(self.amount),
            "cap": _s(self.cap),
            "authority": _s(self.authority),
            "has_capability": self.has_capability,
            "denied_by": [{"rule": r, "error": e} for r, e in self.denied_by],
            "sources": [s.describe() for s in self.sources],
            "consumed": self.consume.describe() if self.consume else None,
        }


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def decide(
    capability: str,
    amount: Decimal | None,
    *,
    cap: Decimal | None,
    amount_capability: bool,
    denied_by: Sequence[tuple[str, str | None]],
    sources: Iterable[Source],
) -> Decision:
    """The decision for one request, from already-evaluated inputs (pure; no I/O, no clock)."""
    srcs = tuple(sorted(sources, key=Source.sort_key))
    limits = [s.limit for s in srcs]
    has = bool(srcs)
    authority = None if not has or any(x is None for x in limits) else max(x for x in limits if x is not None)
    common = {
        "capability": capability,
        "amount": amount,
        "cap": cap,
        "sources": srcs,
        "authority": authority,
        "has_capability": has,
    }
    if denied_by:
        return Decision(DENY, reason="deny_rule", denied_by=tuple(denied_by), **common)
    if amount_capability and (cap is None or amount is None or amount > cap):
        return Decision(DENY, reason="cap", **common)  # no cap configured counts as a cap of nothing
    sufficient = [s for s in srcs if s.covers(amount)]
    free = [s for s in sufficient if s.approval_free]
    if free:
        tightest = min(free, key=Source.sort_key)
        return Decision(
            ALLOW,
            reason="within_authority",
            consume=tightest if tightest.grant_id is not None else None,
            **common,
        )
    return Decision(APPROVAL, reason="not_approval_free" if sufficient else "above_authority", **common)


def grant_active(g: Grant, now: datetime) -> bool:
    """Started, not expired (``ends_at`` is exclusive), not closed, uses left."""
    return (
        g.starts_at <= now
        and (g.ends_at is None or now < g.ends_at)
        and (g.closed_at is None or now < g.closed_at)
        and (g.uses_left is None or g.uses_left > 0)
    )


@dataclass
class GrantChange:
    opened: bool
    grant: Grant


class PermissionEngine:
    """Everything that needs the database: contexts, grant bookkeeping, sources, approver chain."""

    def __init__(self, rules: Any):
        self._rules = rules  # a RulesHolder (has .current()) or a RuleSet

    @property
    def rules(self) -> RuleSet:
        current = getattr(self._rules, "current", None)
        return current() if current else self._rules

    # contexts ------------------------------------------------------------------------------
    def region_tags(self, session: Session, region: str | None) -> dict[str, Any]:
        if not region:
            return {}
        row = session.get(SubjectTags, ("region", region))
        return dict(row.tags) if row else {}

    def context(
        self,
        session: Session,
        customer: Customer,
        rules: RuleSet,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> EvalContext:
        ctags = {**customer.tags, **((overrides or {}).get("customer") or {})}
        rtags = {**self.region_tags(session, customer.region), **((overrides or {}).get("region") or {})}
        return EvalContext(
            rules.tag_types,
            customer=ctags,
            region=rtags,
            builtins={
                "customer": {"id": customer.id, "region": customer.region, "owner": customer.owner_id},
                "region": {"name": customer.region},
            },
        )

    def region_context(
        self, session: Session, region: str, rules: RuleSet, overrides: dict[str, Any] | None = None
    ) -> EvalContext:
        rtags = {**self.region_tags(session, region), **(overrides or {})}
        return EvalContext(rules.tag_types, region=rtags, builtins={"region": {"name": region}})

    # grants --------------------------------------------------------------------------------
    def recipients(self, session: Session, rule: Rule, customer: Customer | None, region: str) -> list[str]:
        if rule.to == "owner" and customer is not None:
            return [customer.owner_id]
        if rule.to == "owner_manager" and customer is not None:
            owner = session.get(User, customer.owner_id)
            return [owner.manager_id] if owner and owner.manager_id else []
        if rule.to == "region_reps":
            return list(
                session.exec(select(User.id).where(User.region == region, User.role == Role.rep, User.active))
            )
        return []

    def sync_customer(
        self,
        session: Session,
        customer: Customer,
        now: datetime,
        *,
        actor: str = "system",
        rules: RuleSet | None = None,
    ) -> list[GrantChange]:
        rules = rules or self.rules
        ctx = self.context(session, customer, rules)
        return self._sync(
            session,
            rules,
            rules.permits("customer"),
            ctx,
            f"customer:{customer.id}",
            customer,
            customer.region,
            now,
            actor,
        )

    def sync_region(
        self,
        session: Session,
        region: str,
        now: datetime,
        *,
        actor: str = "system",
        rules: RuleSet | None = None,
    ) -> list[GrantChange]:
        rules = rules or self.rules
        ctx = self.region_context(session, region, rules)
        return self._sync(
            session, rules, rules.permits("region"), ctx, f"region:{region}", None, region, now, actor
        )

    def _sync(
        self,
        session: Session,
        rules: RuleSet,
        permits: Sequence[Rule],
        ctx: EvalContext,
        subject: str,
        customer: Customer | None,
        region: str,
        now: datetime,
        actor: str,
    ) -> list[GrantChange]:
        """Open grants for rules that now hold (once per episode), disarm and close those that stopped."""
        changes: list[GrantChange] = []
        armed = {}
        for g in session.exec(select(Grant).where(Grant.subject == subject, Grant.armed == True)):  # noqa: E712
            armed.setdefault(g.rule_id, []).append(g)
        known = {r.id for r in permits}
        for rule in permits:
            outcome = rule.condition.evaluate(ctx)
            current = armed.get(rule.id, [])
            if outcome.permits and not current:
                changes += self._open(session, rule, ctx, outcome, subject, customer, region, now, actor)
            elif not outcome.permits and current:
                changes += self._disarm(session, rule, current, outcome, now, actor)
        for rule_id, grants in armed.items():  # the rule was removed from the file: its grants lapse
            if rule_id not in known:
                changes += self._disarm(session, None, grants, Outcome(None, "规则已删除"), now, actor)
        return changes

    def _open(
        self,
        session: Session,
        rule: Rule,
        ctx: EvalContext,
        outcome: Outcome,
        subject: str,
        customer: Customer | None,
        region: str,
        now: datetime,
        actor: str,
    ) -> list[GrantChange]:
        basis = {"rule": rule.id, "when": rule.condition.source, "tags": ctx.basis(rule.condition.refs)}
        out = []
        for user_id in self.recipients(session, rule, customer, region):
            for permit in rule.grants:
                g = Grant(
                    rule_id=rule.id,
                    user_id=user_id,
                    customer_id=customer.id if customer else None,
                    region=None if customer else region,
                    subject=subject,
                    capability=permit.capability,
                    limit=permit.limit,
                    approval_free=permit.approval_free,
                    starts_at=now,
                    ends_at=now + rule.ttl if rule.ttl else None,
                    uses_left=rule.uses,
                    basis=basis,
                    armed=True,
                )
                session.add(g)
                session.flush()
                session.add(
                    AuditLog(
                        at=now,
                        actor=actor,
                        action="grant.open",
                        subject=subject,
                        detail={
                            "grant_id": g.id,
                            "user": user_id,
                            "capability": permit.capability,
                            "limit": _s(permit.limit),
                            "approval_free": permit.approval_free,
                            "ends_at": g.ends_at.isoformat() if g.ends_at else None,
                            "uses": rule.uses,
                            **basis,
                        },
                    )
                )
                out.append(GrantChange(True, g))
        return out

    def _disarm(
        self,
        session: Session,
        rule: Rule | None,
        grants: list[Grant],
        outcome: Outcome,
        now: datetime,
        actor: str,
    ) -> list[GrantChange]:
        out = []
        for g in grants:
            g.armed = False
            closes = rule is None or rule.when_false
            was_active = grant_active(g, now)
            if closes and g.closed_at is None:
                g.closed_at = now
                g.close_reason = "condition_error" if outcome.error else "condition_false"
            session.add(g)
            if closes and was_active:
                session.add(
                    AuditLog(
                        at=now,
                        actor=actor,
                        action="grant.close",
                        subject=g.subject,
                        detail={
                            "grant_id": g.id,
                            "rule": g.rule_id,
                            "user": g.user_id,
                            "capability": g.capability,
                            "reason": g.close_reason,
                            "error": outcome.error,
                        },
                    )
                )
                out.append(GrantChange(False, g))
        return out

    def set_tags(
        self,
        session: Session,
        subject_type: str,
        subject_id: str,
        tags: dict[str, Any],
        *,
        source: str,
        now: datetime,
        actor: str = "system",
    ) -> list[GrantChange]:
        """Change tags (recorded with their source), then re-evaluate the rules they feed."""
        if subject_type == "customer":
            customer = session.get(Customer, subject_id)
            if customer is None:
                raise KeyError(subject_id)
            current = dict(customer.tags)
        else:
            row = session.get(SubjectTags, (subject_type, subject_id)) or SubjectTags(
                subject_type=subject_type, subject_id=subject_id, tags={}
            )
            current = dict(row.tags)
        changed = False
        for tag, value in tags.items():
            if current.get(tag) != value:
                session.add(
                    TagChange(
                        subject_type=subject_type,
                        subject_id=subject_id,
                        tag=tag,
                        old_value=current.get(tag),
                        new_value=value,
                        source=source,
                        at=now,
                    )
                )
                changed = True
                if value is None:
                    current.pop(tag, None)
                else:
                    current[tag] = value
        if not changed:
            return []
        if subject_type == "customer":
            customer.tags = current
            session.add(customer)
            session.flush()
            return self.sync_customer(session, customer, now, actor=actor)
        row.tags = current
        session.add(row)
        session.flush()
        if subject_type == "region":
            changes = self.sync_region(session, subject_id, now, actor=actor)
            for c in session.exec(select(Customer).where(Customer.region == subject_id)):
                changes += self.sync_customer(session, c, now, actor=actor)
            return changes
        return []

    def sync_all(self, session: Session, now: datetime, *, actor: str = "system") -> list[GrantChange]:
        """Re-evaluate every rule for every region and customer (after a reload or a bulk import)."""
        rules = self.rules
        changes: list[GrantChange] = []
        regions = sorted({r for r in session.exec(select(Customer.region))})
        for region in regions:
            changes += self.sync_region(session, region, now, actor=actor, rules=rules)
        for customer in session.exec(select(Customer).order_by(col(Customer.id))):
            changes += self.sync_customer(session, customer, now, actor=actor, rules=rules)
        return changes

    # authority -----------------------------------------------------------------------------
    def baseline(self, rules: RuleSet, user: User, capability: str) -> list[Source]:
        out = []
        role_permit: Permit | None = rules.roles.get(str(user.role), {}).get(capability)
        if role_permit is not None:
            out.append(Source("role", f"role:{user.role}", role_permit.limit, role_permit.approval_free))
        user_permit = rules.users.get(user.id, {}).get(capability)
        if user_permit is not None:
            out.append(Source("user", f"user:{user.id}", user_permit.limit, user_permit.approval_free))
        return out

    def active_grants(
        self,
        session: Session,
        rules: RuleSet,
        user: User,
        customer: Customer | None,
        capability: str,
        now: datetime,
        ctx: EvalContext | None = None,
    ) -> list[Source]:
        t = Grant.__table__.c  # plain rows, not ORM objects: this is on every request's path
        query = select(
            t.id,
            t.rule_id,
            t.limit,
            t.approval_free,
            t.starts_at,
            t.ends_at,
            t.closed_at,
            t.uses_left,
            t.customer_id,
            t.region,
            t.basis,
        ).where(
            t.user_id == user.id,
            t.capability == capability,
            or_(t.closed_at.is_(None), t.closed_at > now),
            t.starts_at <= now,
            or_(t.ends_at.is_(None), t.ends_at > now),
            or_(t.uses_left.is_(None), t.uses_left > 0),
        )
        if customer is not None:
            query = query.where(
                or_(t.customer_id == customer.id, t.customer_id.is_(None) & (t.region == customer.region))
            )
        out = []
        for g in session.execute(query):
            rule = rules.rule(g.rule_id)
            if rule is None or not grant_active(g, now):
                continue  # lapsed (rule gone), expired or used up
            if rule.when_false:
                live = (
                    ctx
                    if (ctx is not None and g.customer_id is not None)
                    else (
                        self.region_context(session, g.region or "", rules)
                        if g.customer_id is None
                        else self.context(session, session.get(Customer, g.customer_id), rules)
                    )
                )
                if not rule.condition.evaluate(live).permits:
                    continue
            out.append(
                Source(
                    "grant",
                    g.rule_id,
                    g.limit,
                    g.approval_free,
                    g.ends_at,
                    g.id,
                    g.uses_left,
                    dict(g.basis.get("tags", {})),
                )
            )
        return out

    def sources(
        self,
        session: Session,
        rules: RuleSet,
        user: User,
        customer: Customer | None,
        capability: str,
        now: datetime,
        ctx: EvalContext | None = None,
    ) -> list[Source]:
        return self.baseline(rules, user, capability) + self.active_grants(
            session, rules, user, customer, capability, now, ctx
        )

    def deny_hits(self, rules: RuleSet, ctx: EvalContext, capability: str) -> list[tuple[str, str | None]]:
        hits = []
        for rule in rules.denies("customer"):
            if capability in rule.denies:
                outcome = rule.condition.evaluate(ctx)
                if outcome.denies:
                    hits.append((rule.id, outcome.error))
        return hits

    def decide(
        self,
        session: Session,
        user: User,
        customer: Customer,
        capability: str,
        amount: Decimal | None,
        now: datetime,
        *,
        rules: RuleSet | None = None,
        ctx: EvalContext | None = None,
        extra_sources: Sequence[Source] = (),
    ) -> Decision:
        from skills.registry import AMOUNT_CAPABILITIES

        rules = rules or self.rules
        ctx = ctx or self.context(session, customer, rules)
        return decide(
            capability,
            amount,
            cap=rules.caps.get(capability),
            amount_capability=capability in AMOUNT_CAPABILITIES,
            denied_by=self.deny_hits(rules, ctx, capability),
            sources=[*self.sources(session, rules, user, customer, capability, now, ctx), *extra_sources],
        )

    def consume(self, session: Session, source: Source) -> bool:
        """Use one grant use: a conditional UPDATE, so two racing executions cannot both take the last."""
        if source.grant_id is None or source.uses_left is None:
            return True
        result = session.execute(
            update(Grant)
            .where(Grant.id == source.grant_id, col(Grant.uses_left) > 0)
            .values(uses_left=Grant.uses_left - 1)
        )
        return result.rowcount == 1

    # approver chain ------------------------------------------------------------------------
    def chain(self, session: Session, user: User) -> list[User]:
        """The user's managers, nearest first (cycle-safe)."""
        out: list[User] = []
        seen = {user.id}
        current = user
        while current.manager_id and current.manager_id not in seen:
            nxt = session.get(User, current.manager_id)
            if nxt is None:
                break
            out.append(nxt)
            seen.add(nxt.id)
            current = nxt
        return out

    def can_approve(
        self,
        session: Session,
        rules: RuleSet,
        approver: User,
        customer: Customer,
        capability: str,
        amount: Decimal | None,
        now: datetime,
    ) -> bool:
        if not approver.active or not self.sources(session, rules, approver, customer, "approve", now):
            return False
        covering = [
            s
            for s in self.sources(session, rules, approver, customer, capability, now)
            if s.covers(amount) and s.approval_free
        ]
        return bool(covering)

    def find_approver(
        self,
        session: Session,
        requester: User,
        customer: Customer,
        capability: str,
        amount: Decimal | None,
        now: datetime,
        *,
        above: User | None = None,
    ) -> User | None:
        """The first manager up the chain (from the requester, or above ``above``) who may approve it."""
        rules = self.rules
        start = above or requester
        for manager in self.chain(session, start):
            if self.can_approve(session, rules, manager, customer, capability, amount, now):
                return manager
        return None
