"""``rules simulate``: which rules fire for a customer with some tags changed, and the authority that
results for each skill, computed by the same engine as real requests, without writing anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from skills.engine import Decision, PermissionEngine, Source
from skills.registry import SKILLS
from skills.rules import RuleSet
from storage.lookup import find_customer
from storage.models import Customer, User


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``nps=-5`` / ``customer.bad_review=true`` / ``region.opinion_level=orange`` -> (subject, tag, v)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"应写成 标签=值: {text!r}")
    subject, _, tag = name.strip().rpartition(".")
    subject = subject or "customer"
    if subject not in ("customer", "region"):
        raise ValueError(f"只能设置 customer.* 或 region.* 标签: {text!r}")
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, float):
        value = Decimal(raw.strip())
    return subject, tag, value


@dataclass
class Simulation:
    customer: Customer
    user: User
    fired: list[tuple[str, str, str]]  # (rule id, kind, outcome text)
    decisions: dict[str, Decision]


def simulate(
    engine: Engine,
    perms: PermissionEngine,
    rules: RuleSet,
    customer_query: str,
    user_id: str,
    assignments: list[str],
    now: datetime,
) -> Simulation:
    overrides: dict[str, dict[str, Any]] = {"customer": {}, "region": {}}
    for text in assignments:
        subject, tag, value = parse_assignment(text)
        overrides[subject][tag] = value
    with Session(engine) as session:
        customer = find_customer(session, customer_query)
        if customer is None:
            raise LookupError(f"没有找到客户 {customer_query!r}")
        user = session.get(User, user_id)
        if user is None:
            raise LookupError(f"没有用户 {user_id!r}")
        ctx = perms.context(session, customer, rules, overrides)
        rctx = perms.region_context(session, customer.region, rules, overrides["region"])
        fired: list[tuple[str, str, str]] = []
        hypothetical: dict[str, list[Source]] = {}
        for rule in rules.rules:
            outcome = rule.condition.evaluate(rctx if rule.subject == "region" else ctx)
            if rule.is_deny:
                state = "禁止生效" if outcome.denies else "不生效"
            else:
                state = "触发" if outcome.permits else "不触发"
            if outcome.error:
                state += f"（{outcome.error}）"
            fired.append((rule.id, "deny" if rule.is_deny else "grant", state))
            if rule.is_deny or not outcome.permits:
                continue
            if user.id not in perms.recipients(session, rule, customer, customer.region):
                continue
            for p in rule.grants:
                hypothetical.setdefault(p.capability, []).append(
                    Source("grant", rule.id, p.limit, p.approval_free, basis=ctx.basis(rule.condition.refs))
                )
        decisions = {}
        for skill in SKILLS.values():
            cap = skill.capability
            base = perms.baseline(rules, user, cap)
            from skills.engine import decide
            from skills.registry import AMOUNT_CAPABILITIES

            amount = rules.caps.get(cap) if skill.amount_param else None
            decisions[skill.name] = decide(
                cap,
                amount,
                cap=rules.caps.get(cap),
                amount_capability=cap in AMOUNT_CAPABILITIES,
                denied_by=perms.deny_hits(rules, ctx, cap),
                sources=[*base, *hypothetical.get(cap, [])],
            )
        return Simulation(customer, user, fired, decisions)
