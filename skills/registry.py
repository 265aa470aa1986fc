"""The skills the bot can carry out for a rep, each with its parameters and the capability it needs.

A skill declares its name, its parameters (validated; amounts are ``Decimal``, never floats), the one
capability it needs and which parameter is the amount that is checked against limits and caps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from skills import texts


class ParamError(ValueError):
    """A parameter is missing or malformed; the message is ready to show the rep (Chinese)."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # decimal | text | int
    label: str
    required: bool = True
    minimum: Decimal | None = None  # exclusive lower bound for decimals (e.g. > 0)
    maximum: Decimal | None = None  # inclusive sanity bound before any rule is consulted
    allow_negative: bool = False
    places: int = 2


@dataclass(frozen=True)
class Skill:
    name: str
    title: str
    capability: str
    params: tuple[Param, ...]
    amount_param: str | None  # which parameter is checked against limits and caps
    unit: str  # 元 / % / 个月 / ""
    ref_prefix: str  # voucher / reference code prefix

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Checked, normalised parameters (JSON-safe: decimals as strings)."""
        out: dict[str, Any] = {}
        for p in self.params:
            value = raw.get(p.name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if p.required:
                    raise ParamError(texts.PARAM_MISSING.format(label=p.label))
                continue
            if p.kind == "decimal":
                out[p.name] = str(parse_decimal(value, p))
            elif p.kind == "text":
                text = str(value).strip()
                if len(text) > 200:
                    raise ParamError(texts.PARAM_TOO_LONG.format(label=p.label))
                out[p.name] = text
        return out

    def amount(self, params: Mapping[str, Any]) -> Decimal | None:
        """The amount checked against limits: absolute value (a -10% price change needs 10% authority)."""
        if self.amount_param is None or params.get(self.amount_param) is None:
            return None
        return abs(Decimal(str(params[self.amount_param])))


def parse_decimal(value: Any, p: Param) -> Decimal:
    if isinstance(value, float):
        raise ParamError(texts.PARAM_NOT_NUMBER.format(label=p.label, value=value))  # never floats
    text = str(value).strip().replace(",", "").replace("，", "")
    for suffix in ("元", "%", "％", "个月", "月", "块"):
        text = text.removesuffix(suffix)
    text = text.replace("＋", "+").replace("－", "-").replace("−", "-")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ParamError(texts.PARAM_NOT_NUMBER.format(label=p.label, value=value)) from None
    if not number.is_finite():
        raise ParamError(texts.PARAM_NOT_NUMBER.format(label=p.label, value=value))
    if number.as_tuple().exponent < -p.places:  # type: ignore[operator]
        raise ParamError(texts.PARAM_TOO_PRECISE.format(label=p.label, places=p.places))
    if number == 0:
        raise ParamError(texts.PARAM_ZERO.format(label=p.label))
    if number < 0 and not p.allow_negative:
        raise ParamError(texts.PARAM_NEGATIVE.format(label=p.label))
    if p.maximum is not None and abs(number) > p.maximum:
        raise ParamError(texts.PARAM_HUGE.format(label=p.label, maximum=p.maximum))
    return number


_REASON = Param("reason", "text", "原因", required=False)

SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill(
            "compensation",
            "补偿包",
            "compensation",
            (Param("amount", "decimal", "补偿金额", maximum=Decimal("1000000")), _REASON),
            "amount",
            "元",
            "CP",
        ),
        Skill(
            "price_adjust",
            "调价",
            "price_adjust",
            (Param("percent", "decimal", "调价幅度", maximum=Decimal("100"), allow_negative=True), _REASON),
            "percent",
            "%",
            "PA",
        ),
        Skill(
            "free_repair",
            "免费维修/换新",
            "free_repair",
            (Param("item", "text", "维修或更换的设备", required=False), _REASON),
            None,
            "",
            "FR",
        ),
        Skill(
            "extended_warranty",
            "延保",
            "extended_warranty",
            (Param("months", "decimal", "延保月数", maximum=Decimal("120"), places=0), _REASON),
            "months",
            "个月",
            "EW",
        ),
    )
}

# Capabilities rules may name: every skill's, plus the right to approve others' requests.
CAPABILITIES: dict[str, str] = {s.capability: s.unit for s in SKILLS.values()} | {"approve": ""}
AMOUNT_CAPABILITIES = {s.capability for s in SKILLS.values() if s.amount_param}
