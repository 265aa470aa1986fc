"""The rules file: tag vocabulary, hard caps, role baselines and the rules (CEL conditions).

``load_rules(path)`` validates the whole file (schema, CEL syntax, unknown tags and capabilities,
durations) and returns a compiled ``RuleSet`` or raises ``FileInvalid`` listing every problem as
``file:line: rules[i] <id>.field: reason``. ``RulesHolder`` swaps rule sets atomically: a bad file
leaves the rules in force untouched.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skills.conditions import TAG_TYPES, Condition, ConditionError
from skills.registry import AMOUNT_CAPABILITIES, CAPABILITIES
from storage.yamlfile import FileInvalid, LocatedYaml, Problem

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
RECIPIENTS = ("owner", "owner_manager", "region_reps")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``48h``, ``7d``, ``2w`` -> timedelta; anything else is a ValueError."""
    found = _DURATION.match(str(text))
    if not found or int(found.group(1)) == 0:
        raise ValueError(f"无效的时长 {text!r}（写成 30m、48h、7d 这样的形式，且大于 0）")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PermitIn(_Strict):
    limit: Decimal | None = Field(None, description="numeric limit (CNY, percent, months); none = yes/no")
    approval_free: bool = False

    @field_validator("limit", mode="before")
    @classmethod
    def _no_float(cls, v: Any) -> Any:
        return Decimal(str(v)) if isinstance(v, float) else v


class ExitIn(_Strict):
    ttl: str | None = None
    when_false: bool = False
    uses: int | None = Field(None, ge=1)


class RuleIn(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    subject: Literal["customer", "region"] = "customer"
    when: str = Field(min_length=1)
    grant: dict[str, PermitIn] | None = None
    deny: list[str] | None = None
    approval_free: bool | None = None  # shorthand: applies to every capability in grant
    to: Literal["owner", "owner_manager", "region_reps"] = "owner"
    exit: ExitIn = Field(default_factory=ExitIn)


class RulesFileIn(_Strict):
    version: int = 1
    tags: dict[str, str] = Field(default_factory=dict)
    caps: dict[str, Decimal]
    roles: dict[Literal["rep", "manager", "admin"], dict[str, PermitIn]] = Field(default_factory=dict)
    users: dict[str, dict[str, PermitIn]] = Field(default_factory=dict)
    rules: list[RuleIn] = Field(default_factory=list)

    @field_validator("caps", mode="before")
    @classmethod
    def _caps_no_float(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: Decimal(str(x)) if isinstance(x, float) else x for k, x in v.items()}
        return v


@dataclass(frozen=True)
class Permit:
    capability: str
    limit: Decimal | None
    approval_free: bool


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    subject: str
    condition: Condition
    grants: tuple[Permit, ...]
    denies: frozenset[str]
    to: str
    ttl: timedelta | None
    when_false: bool
    uses: int | None

    @property
    def is_deny(self) -> bool:
        return bool(self.denies)


@dataclass(frozen=True)
class RuleSet:
    path: str
    digest: str
    tag_types: dict[str, str]
    caps: dict[str, Decimal]
    roles: dict[str, dict[str, Permit]]
    users: dict[str, dict[str, Permit]]
    rules: tuple[Rule, ...]
    by_subject: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    by_id: dict[str, Rule] = field(default_factory=dict)

    def permits(self, subject: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.by_subject.get(subject, ()) if not r.is_deny)

    def denies(self, subject: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.by_subject.get(subject, ()) if r.is_deny)

    def rule(self, rule_id: str) -> Rule | None:
        return self.by_id.get(rule_id)


def load_rules(path: Path) -> RuleSet:
    """Validate and compile a rules file as a whole; ``FileInvalid`` names file, line, rule id and reason."""
    doc = LocatedYaml(Path(path))
    try:
        parsed = doc.validate(RulesFileIn)
    except FileInvalid as exc:
        raise FileInvalid([_with_rule_id(p, doc.data) for p in exc.problems]) from None
    problems: list[Problem] = []

    def bad(loc: list[str | int], reason: str, rule: RuleIn | None = None) -> None:
        p = doc.problem(loc, reason)
        if rule is not None:
            p = Problem(
                p.file,
                p.line,
                f"rules[{loc[1]}] {rule.id}" + p.field.removeprefix(f"rules[{loc[1]}]"),
                reason,
            )
        problems.append(p)

    for name, kind in parsed.tags.items():
        subject, _, tag = name.partition(".")
        if subject not in ("customer", "region") or not tag:
            bad(["tags", name], "标签名应写成 customer.<名> 或 region.<名>")
        if kind not in TAG_TYPES:
            bad(["tags", name], f"未知的类型 {kind!r}，可用: {', '.join(TAG_TYPES)}")
    for cap, value in parsed.caps.items():
        if cap not in CAPABILITIES:
            bad(["caps", cap], f"未知的能力 {cap!r}，可用: {', '.join(CAPABILITIES)}")
        elif value <= 0:
            bad(["caps", cap], "上限必须大于 0")
    for cap in sorted(AMOUNT_CAPABILITIES - set(parsed.caps)):
        bad(["caps"], f"缺少能力 {cap} 的硬上限（每个带金额的能力都必须有）")

    def check_permits(loc: list[str | int], permits: dict[str, PermitIn], rule: RuleIn | None = None) -> None:
        for cap, permit in permits.items():
            if cap not in CAPABILITIES:
                bad([*loc, cap], f"未知的能力 {cap!r}，可用: {', '.join(CAPABILITIES)}", rule)
            elif cap in AMOUNT_CAPABILITIES and permit.limit is None:
                bad([*loc, cap], f"能力 {cap} 需要 limit", rule)
            elif permit.limit is not None and permit.limit < 0:
                bad([*loc, cap, "limit"], "limit 不能为负数", rule)

    for role, permits in parsed.roles.items():
        check_permits(["roles", role], permits)
    for user, permits in parsed.users.items():
        check_permits(["users", user], permits)

    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(parsed.rules):
        loc: list[str | int] = ["rules", i]
        if r.id in seen:
            bad([*loc, "id"], f"规则 id 重复（第 {seen[r.id] + 1} 条已使用）", r)
        seen.setdefault(r.id, i)
        if (r.grant is None) == (r.deny is None):
            bad(loc, "每条规则必须有且只有 grant 或 deny 之一", r)
            continue
        condition = None
        try:
            condition = Condition.compile(r.when)
        except ConditionError as exc:
            bad([*loc, "when"], str(exc), r)
        if condition is not None:
            for subject, tag in condition.refs:
                if f"{subject}.{tag}" not in parsed.tags and tag not in _builtin(subject):
                    bad([*loc, "when"], f"未知的标签 {subject}.{tag}（先在 tags 里声明）", r)
                if r.subject == "region" and subject != "region":
                    bad([*loc, "when"], f"subject 为 region 的规则不能读 {subject}.{tag}", r)
        ttl = None
        if r.exit.ttl is not None:
            try:
                ttl = parse_duration(r.exit.ttl)
            except ValueError as exc:
                bad([*loc, "exit", "ttl"], str(exc), r)
        if r.grant is not None:
            check_permits([*loc, "grant"], r.grant, r)
            if not (r.exit.ttl or r.exit.when_false or r.exit.uses):
                bad([*loc, "exit"], "授权规则必须有退出条件（ttl、when_false 或 uses）", r)
            if r.subject == "region" and r.to != "region_reps":
                bad([*loc, "to"], "subject 为 region 的规则只能授予 region_reps", r)
        if r.deny is not None:
            for j, cap in enumerate(r.deny):
                if cap not in CAPABILITIES:
                    bad([*loc, "deny", j], f"未知的能力 {cap!r}", r)
        if condition is None:
            continue
        grants = tuple(
            Permit(cap, p.limit, p.approval_free if r.approval_free is None else r.approval_free)
            for cap, p in (r.grant or {}).items()
        )
        rules.append(
            Rule(
                r.id,
                r.description,
                r.subject,
                condition,
                grants,
                frozenset(r.deny or ()),
                r.to,
                ttl,
                r.exit.when_false,
                r.exit.uses,
            )
        )
    if problems:
        raise FileInvalid(problems)

    def permits_of(m: dict[str, PermitIn]) -> dict[str, Permit]:
        return {cap: Permit(cap, p.limit, p.approval_free) for cap, p in m.items()}

    by_subject: dict[str, list[Rule]] = {}
    for rule in rules:
        by_subject.setdefault(rule.subject, []).append(rule)
    return RuleSet(
        path=str(path),
        digest=hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12],
        tag_types=dict(parsed.tags),
        caps=dict(parsed.caps),
        roles={str(k): permits_of(v) for k, v in parsed.roles.items()},
        users={k: permits_of(v) for k, v in parsed.users.items()},
        rules=tuple(rules),
        by_subject={k: tuple(v) for k, v in by_subject.items()},
        by_id={r.id: r for r in rules},
    )


def _with_rule_id(p: Problem, data: Any) -> Problem:
    """``rules[3].to`` -> ``rules[3] opinion-orange.to``: name the rule, not only its position."""
    found = re.match(r"^rules\[(\d+)\]", p.field)
    rules = data.get("rules") if isinstance(data, dict) else None
    if not found or not isinstance(rules, list) or int(found.group(1)) >= len(rules):
        return p
    rule = rules[int(found.group(1))]
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    if not rule_id:
        return p
    return Problem(p.file, p.line, f"{found.group(0)} {rule_id}{p.field[found.end() :]}", p.reason)


def _builtin(subject: str) -> set[str]:
    return {"customer": {"id", "region", "owner"}, "region": {"name"}}[subject]


class RulesHolder:
    """The rules in force. ``reload()`` swaps in a new set only when the whole file is valid;
    ``current()`` notices a changed file (mtime) and reloads it the same way."""

    def __init__(self, path: Path, rules: RuleSet | None = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._rules = rules if rules is not None else load_rules(self.path)
        self._stamp = self._stat()
        self.last_error: FileInvalid | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> RuleSet:
        """Load the file again; on FileInvalid the old rules stay in force and the error is raised."""
        with self._lock:
            stamp = self._stat()
            try:
                fresh = load_rules(self.path)
            except FileInvalid as exc:
                self._stamp = stamp  # do not retry the same bad file on every request
                self.last_error = exc
                raise
            self._rules, self._stamp, self.last_error = fresh, stamp, None
            return fresh

    def current(self) -> RuleSet:
        if self._stat() != self._stamp:
            try:
                self.reload()
            except FileInvalid as exc:
                log.error("rules file %s refused, previous rules stay in force:\n%s", self.path, exc)
        return self._rules

    def replace(self, rules: RuleSet) -> None:
        with self._lock:
            self._rules = rules
