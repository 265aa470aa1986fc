"""Importing the org file: idempotent, and a broken file changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from storage.models import Contact, Customer, Opportunity, Product, TagChange, User
from storage.seed import seed_org
from storage.yamlfile import FileInvalid
from tests.conftest import EXAMPLES

ORG = EXAMPLES / "org.yaml"
TABLES: list[type[SQLModel]] = [User, Product, Customer, Contact, Opportunity, TagChange]


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of the org tables, without surrogate ids, in a stable order."""
    out: dict[str, list[tuple]] = {}
    with Session(engine) as s:
        for model in TABLES:
            rows = s.exec(select(model)).all()
            out[model.__name__] = sorted(
                tuple(str(v) for k, v in sorted(r.model_dump().items()) if k not in ("id", "at"))
                for r in rows
            )
    return out


def test_seed_twice_leaves_the_same_rows(engine: Engine) -> None:
    first = seed_org(engine, ORG)
    before = snapshot(engine)
    second = seed_org(engine, ORG)
    assert snapshot(engine) == before
    assert first.created["user"] == 10 and first.created["customer"] == 10
    assert first.created["opportunity"] == 15 and first.created["product"] == 8
    assert sum(second.created.values()) == 0 and sum(second.updated.values()) == 0
    assert second.tag_changes == 0


def test_seed_updates_changed_rows_and_records_tag_history(engine: Engine, tmp_path: Path) -> None:
    seed_org(engine, ORG)
    changed = tmp_path / "org.yaml"
    changed.write_text(
        ORG.read_text(encoding="utf-8").replace("tags: {nps: 42,", "tags: {nps: -3,"), encoding="utf-8"
    )
    report = seed_org(engine, changed)
    assert report.updated["customer"] == 1 and report.tag_changes == 1
    with Session(engine) as s:
        assert s.get(Customer, "bj-xiehe").tags["nps"] == -3
        history = s.exec(select(TagChange).where(TagChange.subject_id == "bj-xiehe",
                                                 TagChange.tag == "nps").order_by(TagChange.id)).all()
        assert [(h.old_value, h.new_value) for h in history] == [(None, 42), (42, -3)]
        assert history[-1].source == "org:org.yaml"
        assert s.exec(select(func.count()).select_from(User)).one() == 10


BROKEN = [
    # (what to replace, with what, expected fragments of the message)
    ("    name: 张三\n", "", ["users[3].name", "缺少必填字段"]),
    ("manager: wangjing\n    telegram_id: \"700201\"", "manager: nobody\n    telegram_id: \"700201\"",
     ["users[3].manager", "未知的经理 'nobody'"]),
    ("  - id: lisi\n    name: 李四\n    role: rep", "  - id: lisi\n    name: 李四\n    role: boss",
     ["users[4].role"]),
    ("customer: bj-fuwai,", "customer: bj-nowhere,", ["opportunities[5].customer", "未知的客户"]),
    ("    owner: zhangsan\n    tags: {nps: 42", "    ownr: zhangsan\n    tags: {nps: 42",
     ["customers[0].ownr", "未知字段"]),
    ("products:\n  - code: GK-TR01", "products:\n  - code: GK-TR01\n   bad: [", ["YAML 语法错误"]),
]


@pytest.mark.parametrize(("old", "new", "expected"), BROKEN)
def test_broken_org_file_is_refused_whole(engine: Engine, tmp_path: Path, old: str, new: str,
                                          expected: list[str]) -> None:
    seed_org(engine, ORG)
    before = snapshot(engine)
    text = ORG.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(old, new, 1).replace("nps: 42", "nps: 7"), encoding="utf-8")
    with pytest.raises(FileInvalid) as info:
        seed_org(engine, broken)
    message = str(info.value)
    assert message.startswith(f"{broken}:")
    assert ":" in message.split("\n")[0].removeprefix(str(broken))  # a line number follows the file
    for fragment in expected:
        assert fragment in message
    assert snapshot(engine) == before  # nothing written, not even the valid nps change


def test_problem_points_at_the_right_line(tmp_path: Path, sqlite_engine: Engine) -> None:
    text = ORG.read_text(encoding="utf-8").replace("manager: lihua\n    wecom_userid: SunYue",
                                                    "manager: nobody\n    wecom_userid: SunYue")
    broken = tmp_path / "org.yaml"
    broken.write_text(text, encoding="utf-8")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "manager: nobody" in ln)
    with pytest.raises(FileInvalid) as info:
        seed_org(sqlite_engine, broken)
    assert str(info.value) == f"{broken}:{line}: users[8].manager: 未知的经理 'nobody'"


def test_manager_cycle_is_refused(tmp_path: Path, sqlite_engine: Engine) -> None:
    broken = tmp_path / "org.yaml"
    broken.write_text(ORG.read_text(encoding="utf-8").replace(
        "role: manager            # 销售总监", "role: manager\n    manager: wangjing  #"), encoding="utf-8")
    with pytest.raises(FileInvalid, match="汇报关系成环"):
        seed_org(sqlite_engine, broken)
