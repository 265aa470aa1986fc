"""Split a loaded document into passages on Chinese clause boundaries, each within the model's limit.

Every passage knows its section (第三条 / 二、执行时间和采购周期（一）) and page. A passage is one
paragraph of the source (the natural unit of a notice: one numbered item); a paragraph longer than
the limit is split at sentence ends (。！？；), then at commas, and only as a last resort at a fixed
width, so the embedding model never truncates silently. Lengths are measured with the model's
own tokenizer (``count_tokens``), not characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from knowledge.loaders import Block, LoadedDocument

_NUM = "一二三四五六七八九十百零〇两"
# (level, pattern); lower level = bigger unit
_MARKERS: list[tuple[int, re.Pattern[str]]] = [
    (0, re.compile(rf"^第[{_NUM}\d]+[章编]")),
    (1, re.compile(rf"^第[{_NUM}\d]+节")),
    (2, re.compile(rf"^[{_NUM}]+、")),
    (3, re.compile(rf"^第[{_NUM}\d]+条")),
    (4, re.compile(rf"^[（(][{_NUM}]+[）)]")),
    (5, re.compile(r"^\d{1,2}[.、．](?!\d)")),
]
_SENTENCE = re.compile(r"(?<=[。！？；!?;])")
_CLAUSE = re.compile(r"(?<=[，、,：:])")
HEADING_MAX_CHARS = 40


def section_marker(text: str) -> tuple[int, str] | None:
    """(level, marker) when ``text`` starts with a Chinese section marker such as 第三条 or （二）."""
    for level, pattern in _MARKERS:
        found = pattern.match(text)
        if found:
            return level, found.group(0)
    return None


@dataclass(frozen=True)
class Passage:
    text: str  # the source text of the passage (what is quoted)
    section: str  # e.g. "二、执行时间和采购周期（一）" or "第三条"
    heading: str  # the enclosing heading text, embedded and indexed with the passage
    page: int | None
    token_count: int

    @property
    def embed_text(self) -> str:
        return f"{self.heading}：{self.text}" if self.heading else self.text


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int = 250, min_chars: int = 24):
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.min_chars = min_chars

    def split(self, doc: LoadedDocument) -> list[Passage]:
        levels: dict[int, str] = {}  # level -> heading text (or marker) currently open
        out: list[Passage] = []
        pending: list[Block] = []  # short paragraphs waiting to be merged with the next one

        def context() -> tuple[str, str]:
            ordered = [(k, levels[k]) for k in sorted(levels)]
            headings = [h for _, h in ordered if len(h) > 6]
            section = "".join(_cite(k, h) for k, h in ordered)
            return section, (headings[-1] if headings else "")

        for block in doc.blocks:
            marker = section_marker(block.text)
            is_heading = block.heading or (
                marker is not None and len(block.text) <= HEADING_MAX_CHARS and not block.text.endswith("。")
            )
            if is_heading:
                self._flush(pending, context, out)
                pending = []
                level = marker[0] if marker else 2
                levels = {k: v for k, v in levels.items() if k < level}
                levels[level] = block.text
                continue
            if marker is not None:
                self._flush(pending, context, out)
                pending = []
                level = marker[0]
                levels = {k: v for k, v in levels.items() if k < level}
                levels[level] = marker[1]
            pending.append(block)
            if sum(len(b.text) for b in pending) >= self.min_chars:
                self._flush(pending, context, out)
                pending = []
        self._flush(pending, context, out)
        return out

    def _flush(self, blocks: list[Block], context: Callable[[], tuple[str, str]], out: list[Passage]) -> None:
        if not blocks:
            return
        section, heading = context()
        if self.count_tokens(heading) > self.max_tokens // 3:
            heading = ""
        text = "".join(b.text for b in blocks)
        page = blocks[0].page
        for piece in self._fit(text, heading):
            out.append(Passage(piece, section, heading, page, self.count_tokens(_embed(heading, piece))))

    def _fit(self, text: str, heading: str) -> list[str]:
        if self.count_tokens(_embed(heading, text)) <= self.max_tokens:
            return [text]
        pieces: list[str] = []
        for splitter in (_SENTENCE, _CLAUSE):
            parts = [p for p in splitter.split(text) if p]
            if len(parts) > 1:
                current = ""
                for part in parts:
                    candidate = current + part
                    if current and self.count_tokens(_embed(heading, candidate)) > self.max_tokens:
                        pieces.extend(self._fit(current, heading))
                        current = part
                    else:
                        current = candidate
                if current:
                    pieces.extend(self._fit(current, heading))
                return pieces
        # one unbreakable run: cut by width until each piece fits
        width = max(8, len(text) // 2)
        return [p for i in range(0, len(text), width) for p in self._fit(text[i : i + width], heading)]


def _embed(heading: str, text: str) -> str:
    return f"{heading}：{text}" if heading else text


def _cite(level: int, heading: str) -> str:
    """How a heading appears in a citation: articles and items by their marker (第八条, （一）),
    chapters and parts by their text when short (二、执行时间和采购周期), else by their marker."""
    found = section_marker(heading)
    if found is not None and (level >= 3 or len(heading) > 20):
        return found[1].strip()
    return heading if len(heading) <= 20 else heading[:20] + "…"
