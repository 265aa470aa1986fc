"""Files in, text blocks out: PDF (pypdf), DOCX (python-docx), Markdown, TXT and HTML (BeautifulSoup).

A loader keeps what citing needs: the title, the page of each block and which blocks are headings
(Chinese section markers such as 第三条, 一、, （二） are recognised later by the chunker). Anything
that cannot become text raises ``LoadError`` with a Chinese message for the admin; nothing is stored.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from knowledge import texts

SUPPORTED = (".pdf", ".docx", ".md", ".markdown", ".txt", ".html", ".htm")
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class LoadError(ValueError):
    """The file cannot be ingested; ``str(err)`` is a message for the admin (Chinese)."""


@dataclass(frozen=True)
class Block:
    text: str
    page: int | None = None
    heading: bool = False


@dataclass
class LoadedDocument:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


def load_document(name: str, content: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedDocument:
    """Parse ``content`` of a file called ``name``. Raises LoadError with a reason in Chinese."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(texts.UNSUPPORTED_TYPE.format(suffix=suffix or name))
    if len(content) > max_bytes:
        raise LoadError(texts.TOO_LARGE.format(size=len(content) / 2**20, limit=max_bytes / 2**20))
    if not content.strip():
        raise LoadError(texts.EMPTY_FILE)
    loader = {".pdf": _pdf, ".docx": _docx, ".html": _html, ".htm": _html}.get(suffix, _plain)
    doc = loader(content, suffix)
    doc.blocks = [b for b in doc.blocks if b.text]
    if not doc.blocks:
        raise LoadError(texts.NO_TEXT)
    if not doc.title:
        doc.title = _guess_title(doc.blocks, name)
    if len(doc.blocks) > 1 and doc.blocks[0].text == doc.title:
        doc.blocks = doc.blocks[1:]
    return doc


# plain text and Markdown --------------------------------------------------------------------
def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LoadError(texts.UNDECODABLE_TEXT)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_MD_NOISE = re.compile(r"(\*\*|__|`|^>\s?|^[-*+]\s+(?=\S))")


def _plain(content: bytes, suffix: str) -> LoadedDocument:
    text = _decode(content)
    if "\x00" in text:
        raise LoadError(texts.CORRUPT_FILE.format(kind="文本中含有二进制内容"))
    markdown = suffix in (".md", ".markdown")
    title = ""
    blocks: list[Block] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or (markdown and re.fullmatch(r"[-*_=]{3,}", line)):
            continue
        heading = False
        if markdown:
            found = _MD_HEADING.match(line)
            if found:
                line, heading = found.group(2).strip(), True
                if len(found.group(1)) == 1 and not title:
                    title = line
                    continue
            line = _MD_NOISE.sub("", line).strip()
        blocks.append(Block(_clean(line), heading=heading))
    return LoadedDocument(title, blocks)


# HTML ---------------------------------------------------------------------------------------
def _html(content: bytes, suffix: str) -> LoadedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(content, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer"]):
        tag.decompose()
    h1 = soup.find("h1")
    title = _clean(h1.get_text(" ")) if h1 else ""
    if not title and soup.title:
        title = _clean(soup.title.get_text(" "))
    blocks: list[Block] = []
    body = soup.body or soup
    for tag in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "td", "pre", "blockquote"]):
        if tag.find(["p", "li", "td", "pre"]):  # a container: its children come on their own
            continue
        text = _clean(tag.get_text(" "))
        if tag is h1 and text == title:
            continue
        if text:
            blocks.append(Block(text, heading=tag.name.startswith("h")))
    if not blocks:  # text outside block tags
        blocks = [Block(_clean(line)) for line in body.get_text("\n").splitlines() if line.strip()]
    return LoadedDocument(title, blocks)


# DOCX ---------------------------------------------------------------------------------------
def _docx(content: bytes, suffix: str) -> LoadedDocument:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(content))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(texts.CORRUPT_FILE.format(kind=f"DOCX：{type(exc).__name__}")) from exc
    title = _clean(document.core_properties.title or "")
    blocks: list[Block] = []
    for para in document.paragraphs:
        text = _clean(para.text)
        style = (para.style.name or "").lower() if para.style is not None else ""
        if not text:
            continue
        if style == "title" and not title:
            title = text
            continue
        blocks.append(Block(text, heading=style.startswith("heading")))
    for table in document.tables:
        for row in table.rows:
            cells = [_clean(c.text) for c in row.cells]
            line = " | ".join(dict.fromkeys(c for c in cells if c))
            if line:
                blocks.append(Block(line))
    return LoadedDocument(title, blocks)


# PDF ----------------------------------------------------------------------------------------
def _pdf(content: bytes, suffix: str) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise LoadError(texts.ENCRYPTED_PDF)
        pages = list(reader.pages)
        blocks: list[Block] = []
        for number, page in enumerate(pages, start=1):
            for line in (page.extract_text() or "").splitlines():
                text = _clean(line)
                if text:
                    blocks.append(Block(text, page=number))
        meta_title = _clean(str((reader.metadata or {}).get("/Title") or ""))
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise LoadError(texts.CORRUPT_FILE.format(kind=f"PDF：{type(exc).__name__}")) from exc
    if not blocks:
        raise LoadError(texts.SCANNED_PDF if pages else texts.CORRUPT_FILE.format(kind="PDF 没有页面"))
    return LoadedDocument(meta_title, _join_pdf_lines(blocks))


_SENTENCE_END = tuple("。！？；：;!?")


def _join_pdf_lines(lines: list[Block]) -> list[Block]:
    """PDF text comes as visual lines: glue wrapped lines back into paragraphs (same page)."""
    from knowledge.chunking import section_marker

    out: list[Block] = []
    for line in lines:
        starts_new = section_marker(line.text) is not None
        if out and out[-1].page == line.page and not starts_new and not out[-1].text.endswith(_SENTENCE_END):
            out[-1] = Block(out[-1].text + line.text, page=line.page)
        else:
            out.append(line)
    return out


# helpers ------------------------------------------------------------------------------------
def _clean(text: str) -> str:
    text = text.replace("\u3000", " ").replace("\xa0", " ")
    return re.sub(r"\s+", " ", text).strip()


def _guess_title(blocks: list[Block], name: str) -> str:
    from knowledge.chunking import section_marker

    first = blocks[0].text
    if len(first) <= 80 and not first.endswith(_SENTENCE_END) and section_marker(first) is None:
        return first
    return PurePath(name).stem
