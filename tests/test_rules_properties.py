"""Rule-set level invariants: order and duplicates of rules do not change a decision; adding a permit
never removes an allow; adding a deny never adds one. Checked for every example customer and skill."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from bot.settings import SettingsError, load_settings
from skills.engine import ALLOW, PermissionEngine, decide
from skills.rules import load_rules
from skills.simulate import simulate
from tests.conftest import EXAMPLES
from tests.perm_helpers import T0, seeded

BASE = yaml.safe_load((EXAMPLES / "rules.yaml").read_text(encoding="utf-8"))
AMOUNTS = [Decimal(1), Decimal(50), Decimal(150), Decimal(300), Decimal(1000)]
CASES = [("bj-pku3", "zhangsan"), ("bj-jst", "lisi"), ("js-gulou", "chenchen"), ("bj-xiehe", "zhangsan")]
SETS = [[], ["region.opinion_level=orange"], ["compliance_hold=true"], ["nps=-1", "bad_review=true"]]


@pytest.fixture
def org(sqlite_engine: Engine) -> Engine:
    return seeded(sqlite_engine)


def outcomes(engine: Engine, tmp_path: Path, doc: dict, name: str) -> dict:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rules = load_rules(path)
    perms = PermissionEngine(rules)
    out = {}
    for customer, user in CASES:
        for sets in SETS:
            sim = simulate(engine, perms, rules, customer, user, sets, T0)
            for skill, d in sim.decisions.items():
                for amount in AMOUNTS:
                    again = decide(
                        d.capability,
                        amount if d.amount is not None else None,
                        cap=d.cap,
                        amount_capability=d.amount is not None,
                        denied_by=d.denied_by,
                        sources=d.sources,
                    )
                    out[(customer, tuple(sets), skill, amount)] = (again.outcome, again.authority)
    return out


EXTRA_PERMIT = {
    "id": "extra-permit",
    "when": "customer.nps > 10",
    "grant": {"compensation": {"limit": 150}},
    "approval_free": True,
    "exit": {"ttl": "1h"},
}
EXTRA_DENY = {
    "id": "extra-deny",
    "when": "customer.competitor_views > 2",
    "deny": ["price_adjust", "compensation"],
}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(BASE["rules"]))), dup=st.integers(0, len(BASE["rules"]) - 1))
def test_order_and_duplicates_of_rules_do_not_change_decisions(org, tmp_path, order, dup) -> None:
    base = outcomes(org, tmp_path, BASE, "base")
    shuffled = dict(BASE, rules=[BASE["rules"][i] for i in order] + [dict(BASE["rules"][dup], id="copy")])
    assert outcomes(org, tmp_path, shuffled, "shuffled") == base


def test_adding_a_permit_never_removes_an_allow_and_a_deny_never_adds_one(
    org: Engine, tmp_path: Path
) -> None:
    base = outcomes(org, tmp_path, BASE, "base")
    more = outcomes(org, tmp_path, dict(BASE, rules=[*BASE["rules"], EXTRA_PERMIT]), "permit")
    denied = outcomes(org, tmp_path, dict(BASE, rules=[*BASE["rules"], EXTRA_DENY]), "deny")
    for key, (outcome, _) in base.items():
        if outcome == ALLOW:
            assert more[key][0] == ALLOW, key
        if denied[key][0] == ALLOW:
            assert outcome == ALLOW, key
    assert any(more[k][0] == ALLOW and base[k][0] != ALLOW for k in base)  # the permit did something
    assert any(denied[k][0] != ALLOW and base[k][0] == ALLOW for k in base)  # so did the deny


def test_escalation_setting_is_validated() -> None:
    assert load_settings(approval_escalate_after="30m").approval_escalate_after == "30m"
    with pytest.raises(SettingsError, match="SALESBOT_APPROVAL_ESCALATE_AFTER"):
        load_settings(approval_escalate_after="soon")
