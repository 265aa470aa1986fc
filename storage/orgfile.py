"""The org file (users, products, customers, opportunities): schema and cross-checks."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.models import Role
from storage.yamlfile import FileInvalid, LocatedYaml, Problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class UserIn(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: Role
    region: str | None = None
    manager: str | None = None
    telegram_id: str | None = None
    wecom_userid: str | None = None
    extra: dict[str, Any] = {}


class ProductIn(_Strict):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    keywords: list[str] = []
    description: str = ""


class ContactIn(_Strict):
    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    influence: int = Field(3, ge=1, le=5)
    focus: list[str] = []


class CustomerIn(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    aliases: list[str] = []
    tags: dict[str, Any] = {}
    contacts: list[ContactIn] = []
    extra: dict[str, Any] = {}


class OpportunityIn(_Strict):
    id: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    products: list[str] = Field(min_length=1)
    stage: str = Field(min_length=1)
    amount: Decimal = Field(ge=0)
    stage_since: date | datetime | None = None
    last_activity: date | datetime | None = None
    status: str = Field("open", pattern="^(open|won|lost)$")


class OrgFile(_Strict):
    users: list[UserIn]
    products: list[ProductIn] = []
    customers: list[CustomerIn] = []
    opportunities: list[OpportunityIn] = []


def load_org(path: Path) -> OrgFile:
    """Parse and check the whole file; any problem refuses it as a whole (FileInvalid)."""
    doc = LocatedYaml(path)
    org = doc.validate(OrgFile)
    problems = _cross_check(org, doc)
    if problems:
        raise FileInvalid(problems)
    return org


def _cross_check(org: OrgFile, doc: LocatedYaml) -> list[Problem]:
    problems: list[Problem] = []

    def unique(section: str, key: str, values: list[str | None]) -> None:
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value is None:
                continue
            if value in seen:
                problems.append(doc.problem([section, i, key], f"重复的值 {value!r}"))
            seen.add(value)

    unique("users", "id", [u.id for u in org.users])
    unique("users", "telegram_id", [u.telegram_id for u in org.users])
    unique("users", "wecom_userid", [u.wecom_userid for u in org.users])
    unique("products", "code", [p.code for p in org.products])
    unique("customers", "id", [c.id for c in org.customers])
    unique("opportunities", "id", [o.id for o in org.opportunities])

    users = {u.id: u for u in org.users}
    for i, user in enumerate(org.users):
        if user.manager is None:
            continue
        boss = users.get(user.manager)
        if boss is None:
            problems.append(doc.problem(["users", i, "manager"], f"未知的经理 {user.manager!r}"))
        elif boss.role == Role.rep:
            problems.append(doc.problem(["users", i, "manager"], f"{user.manager!r} 是代表，不能当经理"))
        elif _has_cycle(user.id, users):
            problems.append(doc.problem(["users", i, "manager"], "汇报关系成环"))

    products = {p.code for p in org.products}
    customers = {c.id for c in org.customers}
    for i, cust in enumerate(org.customers):
        if cust.owner not in users:
            problems.append(doc.problem(["customers", i, "owner"], f"未知的负责人 {cust.owner!r}"))
        for j, contact in enumerate(cust.contacts):
            if [c.name for c in cust.contacts].index(contact.name) != j:
                problems.append(doc.problem(["customers", i, "contacts", j, "name"], "同一客户下联系人重名"))
    for i, opp in enumerate(org.opportunities):
        if opp.customer not in customers:
            problems.append(doc.problem(["opportunities", i, "customer"], f"未知的客户 {opp.customer!r}"))
        for j, code in enumerate(opp.products):
            if code not in products:
                problems.append(doc.problem(["opportunities", i, "products", j], f"未知的产品 {code!r}"))
    return problems


def _has_cycle(start: str, users: dict[str, UserIn]) -> bool:
    seen = {start}
    current = users[start].manager
    while current is not None and current in users:
        if current in seen:
            return True
        seen.add(current)
        current = users[current].manager
    return False
