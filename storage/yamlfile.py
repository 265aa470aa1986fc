"""Load a YAML file and validate it with pydantic, reporting problems as ``file:line: field: reason``.

Used for every file an operator edits by hand (org, rules), so all of them fail the same readable way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class FileInvalid(ValueError):
    """A hand-edited file was refused as a whole; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LocatedYaml:
    """Parsed YAML data plus the node tree, to turn a field path into a line number."""

    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileInvalid([Problem(self.name, None, "", "文件不存在")]) from None
        except UnicodeDecodeError:
            raise FileInvalid([Problem(self.name, None, "", "文件不是 UTF-8 编码")]) from None
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            reason = f"YAML 语法错误: {getattr(exc, 'problem', None) or exc}"
            raise FileInvalid([Problem(self.name, line, "", reason)]) from None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of the deepest node on ``loc`` that exists (1-based)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == str(key):
                        child = v
                        line = k.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def problem(self, loc: Sequence[str | int], reason: str) -> Problem:
        return Problem(self.name, self.line_of(loc), format_loc(loc), reason)

    def validate(self, model: type[M]) -> M:
        if not isinstance(self.data, dict):
            raise FileInvalid([Problem(self.name, 1, "", "顶层应当是一个映射 (key: value)")])
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
                problems.append(self.problem(loc, _reason(err)))
            raise FileInvalid(problems) from None


def format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "缺少必填字段"
    if kind == "extra_forbidden":
        return "未知字段（拼写错误？）"
    return str(err["msg"])
