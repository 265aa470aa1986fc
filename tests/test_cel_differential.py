"""Our CEL runtime (the native ``cel`` binding behind ``skills.conditions``) against an independent
second implementation (cel-python, ``celpy``) on generated expressions and tag values."""

from __future__ import annotations

from typing import Any

import celpy
from hypothesis import given, settings
from hypothesis import strategies as st

from skills.conditions import Condition, EvalContext

TYPES = {"i": "int", "j": "int", "d": "double", "b": "bool", "s": "string"}
TAG_TYPES = {f"customer.{k}": v for k, v in TYPES.items()}


def int_expr() -> st.SearchStrategy[str]:
    leaf = st.one_of(st.sampled_from(["customer.i", "customer.j"]), st.integers(-50, 50).map(str))
    return st.recursive(
        leaf,
        lambda inner: st.tuples(inner, st.sampled_from(["+", "-"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        max_leaves=3,
    )


def double_expr() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("customer.d"), st.floats(-100, 100, allow_nan=False).map(lambda f: repr(round(f, 2)))
    )


def comparison() -> st.SearchStrategy[str]:
    ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
    ints = st.tuples(int_expr(), ops, int_expr()).map(" ".join)
    doubles = st.tuples(double_expr(), ops, double_expr()).map(" ".join)
    strings = st.tuples(
        st.just("customer.s"), st.sampled_from(["==", "!="]), st.sampled_from(['"orange"', '"red"', '""'])
    ).map(" ".join)
    member = st.sampled_from(['customer.s in ["orange", "red"]', "customer.i in [1, 2, 3]"])
    return st.one_of(
        ints,
        doubles,
        strings,
        member,
        st.sampled_from(["customer.b", "!customer.b", "true", "false"]),
        st.sampled_from(["has(customer.i)", "has(customer.missing)"]),
    )


def expression() -> st.SearchStrategy[str]:
    return st.recursive(
        comparison(),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"!({e})"),
        ),
        max_leaves=5,
    )


values = st.fixed_dictionaries(
    {},
    optional={
        "i": st.integers(-60, 60),
        "j": st.integers(-60, 60),
        "d": st.floats(-120, 120, allow_nan=False),
        "b": st.booleans(),
        "s": st.sampled_from(["orange", "red", "blue", ""]),
    },
)

_env = celpy.Environment()


def celpy_result(source: str, tags: dict[str, Any]) -> bool | None:
    try:
        result = _env.program(_env.compile(source)).evaluate(celpy.json_to_cel({"customer": tags}))
    except celpy.CELEvalError:
        return None
    if isinstance(result, celpy.CELEvalError):
        return None
    return bool(result) if isinstance(result, celpy.celtypes.BoolType) else None


@settings(max_examples=400, deadline=None)
@given(expression(), values)
def test_native_cel_and_cel_python_agree(source: str, tags: dict[str, Any]) -> None:
    ours = Condition.compile(source).evaluate(EvalContext(TAG_TYPES, customer=tags)).value
    assert ours == celpy_result(source, tags), source


def test_fail_closed_on_missing_and_mistyped_tags() -> None:
    c = Condition.compile("customer.i > 3")
    missing = c.evaluate(EvalContext(TAG_TYPES, customer={}))
    assert missing.value is None and not missing.permits and missing.denies and "i" in (missing.error or "")
    wrong = c.evaluate(EvalContext(TAG_TYPES, customer={"i": "5"}))
    assert not wrong.permits and wrong.denies and "类型不对" in (wrong.error or "")
    assert not Condition.compile("customer.i").evaluate(EvalContext(TAG_TYPES, customer={"i": 1})).permits
    absorbed = Condition.compile("customer.j > 100 && customer.i > 3").evaluate(
        EvalContext(TAG_TYPES, customer={"j": 1})
    )
    assert absorbed.value is False  # CEL's commutative && : false wins over an error


def test_non_boolean_results_never_permit() -> None:
    for source in ("customer.i + 1", '"true"', "customer.s"):
        out = Condition.compile(source).evaluate(EvalContext(TAG_TYPES, customer={"i": 1, "s": "x"}))
        assert not out.permits and out.denies
