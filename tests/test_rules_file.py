"""The rules file: the example passes, a broken copy is refused whole naming file, line, rule and reason,
and a reload with a bad file leaves the rules in force untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skills.rules import RulesHolder, load_rules, parse_duration
from storage.yamlfile import FileInvalid
from tests.conftest import EXAMPLES
from tests.test_chat import run_cli

GOOD = (EXAMPLES / "rules.yaml").read_text(encoding="utf-8")


def broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in GOOD
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    return path


def test_example_rules_pass_and_hold_the_product_examples() -> None:
    rules = load_rules(EXAMPLES / "rules.yaml")
    ids = {r.id for r in rules.rules}
    assert {
        "competitor-price",
        "bad-review-care",
        "review-match-500",
        "opinion-orange",
        "compliance-hold",
    } <= ids
    assert rules.rule("opinion-orange").ttl == parse_duration("48h")
    assert rules.rule("compliance-hold").is_deny


@pytest.mark.parametrize(
    "old,new,field,reason",
    [
        (
            "when: customer.competitor_views > 3",
            "when: customer.competitor_views >",
            "rules[0] competitor-price.when",
            "CEL 语法错误",
        ),
        (
            "when: customer.competitor_views > 3",
            "when: customer.competitor_veiws > 3",
            "rules[0] competitor-price.when",
            "未知的标签 customer.competitor_veiws",
        ),
        (
            "      price_adjust: {limit: 15}",
            "      price_adjustment: {limit: 15}",
            "rules[0] competitor-price.grant.price_adjustment",
            "未知的能力",
        ),
        ("exit: {ttl: 48h}", "exit: {ttl: 48hours}", "rules[3] opinion-orange.exit.ttl", "无效的时长"),
        (
            "exit: {ttl: 72h, uses: 1}",
            "exit: {ttl: 0h, uses: 1}",
            "rules[2] review-match-500.exit.ttl",
            "无效的时长",
        ),
        (
            "deny: [compensation, price_adjust, extended_warranty, free_repair]",
            "deny: [refund]",
            "rules[4] compliance-hold.deny[0]",
            "未知的能力",
        ),
        ("  compensation: 5000\n", "", "caps", "缺少能力 compensation 的硬上限"),
        (
            "    to: owner\n    exit: {when_false: true, ttl: 14d}",
            "    to: owner",
            "rules[0] competitor-price.exit",
            "必须有退出条件",
        ),
        ("- id: bad-review-care", "- id: competitor-price", "rules[1] competitor-price.id", "规则 id 重复"),
        ("    to: region_reps", "    to: everybody", "rules[3] opinion-orange.to", "Input should be"),
    ],
)
def test_a_broken_copy_is_refused_naming_file_line_rule_and_reason(tmp_path, old, new, field, reason) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(FileInvalid) as err:
        load_rules(path)
    text = str(err.value)
    assert f"{path}:" in text and field in text and reason in text, text
    assert all(p.line for p in err.value.problems)


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("caps: {compensation: 1\nrules: [", encoding="utf-8")
    with pytest.raises(FileInvalid, match="YAML 语法错误"):
        load_rules(bad)
    with pytest.raises(FileInvalid, match="文件不存在"):
        load_rules(tmp_path / "none.yaml")


def test_reload_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    holder = RulesHolder(path)
    before = holder.current()
    path.write_text(
        GOOD.replace("customer.competitor_views > 3", "customer.competitor_views >"), encoding="utf-8"
    )
    os.utime(path, ns=(1, 1))
    with pytest.raises(FileInvalid):
        holder.reload()
    assert holder.current() is before  # a bad file leaves the rules in force untouched
    path.write_text(GOOD.replace("competitor_views > 3", "competitor_views > 5"), encoding="utf-8")
    os.utime(path, ns=(2, 2))
    after = holder.current()  # a changed, valid file is picked up on the next use
    assert after is not before and after.rule("competitor-price").condition.source.endswith("> 5")


def test_rules_check_on_the_command_line(tmp_path: Path) -> None:
    ok = run_cli(["rules", "check", str(EXAMPLES / "rules.yaml")], "", tmp_path)
    assert ok.returncode == 0 and "通过" in ok.stdout
    path = broken(tmp_path, "when: customer.competitor_views > 3", "when: customer.competitor_veiws > 3")
    bad = run_cli(["rules", "check", str(path)], "", tmp_path)
    assert bad.returncode == 1
    assert "rules[0] competitor-price.when: 未知的标签 customer.competitor_veiws" in bad.stderr


def test_rules_simulate_shows_rules_and_authority(tmp_path: Path) -> None:
    assert run_cli(["seed", str(EXAMPLES / "org.yaml")], "", tmp_path).returncode == 0
    out = run_cli(
        [
            "rules",
            "simulate",
            "--customer",
            "协和",
            "--as",
            "zhangsan",
            "--set",
            "nps=-5",
            "--set",
            "bad_review=true",
            "--set",
            "region.opinion_level=orange",
        ],
        "",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "规则 bad-review-care [grant]: 触发" in out.stdout
    assert "规则 opinion-orange [grant]: 触发" in out.stdout
    assert "规则 competitor-price [grant]: 不触发" in out.stdout
    assert "补偿包: 免审批 300 元" in out.stdout and "免费维修/换新: 免审批 可办理" in out.stdout
    deny = run_cli(
        ["rules", "simulate", "--customer", "bj-xiehe", "--as", "zhangsan", "--set", "compliance_hold=true"],
        "",
        tmp_path,
    )
    assert (
        "规则 compliance-hold [deny]: 禁止生效" in deny.stdout
        and "补偿包: 禁止（compliance-hold）" in deny.stdout
    )


def test_tags_set_and_approvals_due_on_the_command_line(tmp_path: Path) -> None:
    assert run_cli(["seed", str(EXAMPLES / "org.yaml")], "", tmp_path).returncode == 0
    out = run_cli(["tags", "set", "--region", "江苏", "opinion_level=orange"], "", tmp_path)
    assert out.returncode == 0 and "opinion-orange" in out.stdout and "chenchen" in out.stdout
    chat = run_cli(["chat", "--as", "zhangsan"], "/comp 北医三院 900 测试\n", tmp_path)
    assert "已提交给 王静 审批" in chat.stdout and "→ 发给 王静" in chat.stdout
    due = run_cli(["approvals", "due", "--at", "2100-01-01T00:00:00+00:00"], "", tmp_path)
    assert due.returncode == 0 and "升级给 周建华" in due.stdout


def test_bench_runs_small(tmp_path: Path) -> None:
    out = run_cli(
        ["bench", "permissions", "--rules", "10", "--customers", "100", "--repeats", "1"], "", tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "两种实现结果不一致的次数: 0" in out.stdout
