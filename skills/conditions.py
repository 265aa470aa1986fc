"""Rule conditions in CEL, evaluated fail-closed.

The engine is the native CEL binding (``common-expression-language``, ``import cel``); never Python
``eval``. Every condition reads tags as ``customer.<tag>`` or ``region.<tag>``. Tags are typed in the
rules file; a tag the condition reads that has the wrong type, or a missing tag CEL needs (use
``has(customer.x)`` to guard optional tags), makes the condition an *error*, never silently false:
a permit then does not fire and a deny does.
Only a result that is exactly the boolean ``True`` counts as true.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import cel

SUBJECTS = ("customer", "region")
TAG_TYPES = ("int", "double", "bool", "string")
_STRING_LITERAL = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_REF = re.compile(r"\b(customer|region)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_BUILTIN_FIELDS = {"customer": {"id", "region", "owner"}, "region": {"name"}}


class ConditionError(ValueError):
    """The expression does not compile or reads something that does not exist."""


@dataclass(frozen=True)
class Outcome:
    value: bool | None  # None = could not be evaluated
    error: str | None = None

    @property
    def permits(self) -> bool:
        return self.value is True

    @property
    def denies(self) -> bool:
        return self.value is not False  # an error makes a deny true


@dataclass(frozen=True)
class Condition:
    source: str
    refs: tuple[tuple[str, str], ...]  # (subject, tag) pairs the expression reads
    _program: Any

    @classmethod
    def compile(cls, source: str) -> Condition:
        try:
            program = cel.compile(source)
        except Exception as exc:  # the binding raises ValueError with the parser's message
            raise ConditionError(f"CEL 语法错误: {_first_line(exc)}") from None
        unknown = [v for v in program.variables() if v not in SUBJECTS and not _bound_by_macro(source, v)]
        if unknown:
            raise ConditionError(
                f"未知的变量 {', '.join(unknown)}（只能用 customer.<标签> 或 region.<标签>）"
            )
        return cls(source, referenced_tags(source), program)

    def evaluate(self, ctx: EvalContext) -> Outcome:
        for subject, tag in self.refs:
            problem = ctx.problems.get((subject, tag))
            if problem:
                return Outcome(None, problem)
        try:
            result = self._program.execute(ctx.cel)
        except KeyError as exc:  # a tag the expression needed is missing (has() guards avoid this)
            return Outcome(None, f"标签缺失: {exc.args[0] if exc.args else exc}")
        except Exception as exc:
            return Outcome(None, f"求值出错: {_first_line(exc)}")
        if type(result) is not bool:
            return Outcome(None, f"结果不是布尔值: {result!r}")
        return Outcome(result)


def referenced_tags(source: str) -> tuple[tuple[str, str], ...]:
    """``customer.nps < 0 && region.level == "red"`` -> (("customer", "nps"), ("region", "level"))."""
    bare = _STRING_LITERAL.sub('""', source)
    seen: dict[tuple[str, str], None] = {}
    for subject, tag in _REF.findall(bare):
        seen[(subject, tag)] = None
    return tuple(seen)


def _bound_by_macro(source: str, name: str) -> bool:
    return (
        re.search(rf"\.\s*(all|exists|exists_one|map|filter)\s*\(\s*{re.escape(name)}\s*,", source)
        is not None
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def coerce(kind: str, value: Any) -> Any:
    """The value as CEL should see it for a declared tag type; raises TypeError when it does not fit."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
    elif kind == "double":
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return float(value)
    elif kind == "string" and isinstance(value, str):
        return value
    raise TypeError(f"应为 {kind}，实际是 {type(value).__name__} {value!r}")


class EvalContext:
    """The tags of one customer (and its region), typed once and shared by every rule evaluated on it."""

    def __init__(
        self,
        tag_types: Mapping[str, str],
        *,
        customer: Mapping[str, Any] | None = None,
        region: Mapping[str, Any] | None = None,
        builtins: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.values: dict[str, dict[str, Any]] = {s: {} for s in SUBJECTS}
        self.problems: dict[tuple[str, str], str] = {}
        self.raw: dict[str, Mapping[str, Any]] = {"customer": customer or {}, "region": region or {}}
        for subject in SUBJECTS:
            for tag, value in (self.raw[subject]).items():
                kind = tag_types.get(f"{subject}.{tag}")
                if kind is None:
                    continue  # undeclared tags are invisible to rules (rules check refuses reading them)
                try:
                    self.values[subject][tag] = coerce(kind, value)
                except TypeError as exc:
                    self.problems[(subject, tag)] = f"标签 {subject}.{tag} 类型不对: {exc}"
            for name, value in ((builtins or {}).get(subject) or {}).items():
                self.values[subject][name] = value
        self.cel = cel.Context(self.values)

    def basis(self, refs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """The tag values a condition read, for the decision's basis (JSON-safe)."""
        out: dict[str, Any] = {}
        for subject, tag in refs:
            value = self.raw[subject].get(tag, self.values[subject].get(tag))
            out[f"{subject}.{tag}"] = str(value) if isinstance(value, Decimal) else value
        return out
