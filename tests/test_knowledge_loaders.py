"""Loaders and chunking: every supported format, the broken-file cases, sections, pages, limits."""

from __future__ import annotations

import pytest

from knowledge.chunking import Chunker, section_marker
from knowledge.loaders import LoadError, load_document
from tests.conftest import EXAMPLES
from tests.documents import blank_pdf, docx_bytes, encrypted_pdf, text_pdf

NOTICE = (
    "关于规范跟台服务的通知\n\n一、总体要求\n\n（一）跟台人员不得上台操作。\n\n"
    "第三条 本通知自2026年1月1日起施行。\n"
)


def test_markdown_keeps_title_headings_and_markers() -> None:
    doc = load_document("a.md", (EXAMPLES / "knowledge" / "js-drg-2026.md").read_bytes())
    assert doc.title.startswith("江苏省医疗保障局关于调整疾病诊断相关分组")
    assert any(b.heading for b in doc.blocks)
    assert not any(b.text.startswith("#") or "**" in b.text for b in doc.blocks)


def test_txt_in_gb18030_and_title_from_first_line() -> None:
    doc = load_document("notice.txt", NOTICE.encode("gb18030"))
    assert doc.title == "关于规范跟台服务的通知"
    assert next(b.text for b in doc.blocks) == "一、总体要求"


def test_html_drops_scripts_and_uses_h1_as_title() -> None:
    html = (
        "<html><head><title>t</title><script>alert(1)</script></head><body><h1>挂网通知</h1>"
        "<h2>一、挂网范围</h2><p>（一）骨科耗材按套挂网。</p></body></html>"
    )
    doc = load_document("a.html", html.encode())
    assert doc.title == "挂网通知"
    assert [b.text for b in doc.blocks] == ["一、挂网范围", "（一）骨科耗材按套挂网。"]
    assert doc.blocks[0].heading and "alert" not in doc.text


def test_docx_headings_and_title() -> None:
    data = docx_bytes(
        "临床使用细则", [("第一章 总则", "Heading 1"), ("第三条 植入类耗材记录永久保存。", None)]
    )
    doc = load_document("rules.docx", data)
    assert doc.title == "临床使用细则"
    assert doc.blocks[0].heading and doc.blocks[1].text.startswith("第三条")


def test_pdf_text_layer_with_pages_and_joined_lines() -> None:
    data = text_pdf(
        [["第一条 本通知自2026年1月1日起", "施行。"], ["第二条 跟台人员每年培训一次。"]], title="测试通知"
    )
    doc = load_document("a.pdf", data)
    assert doc.title == "测试通知"
    assert [(b.text, b.page) for b in doc.blocks] == [
        ("第一条 本通知自2026年1月1日起施行。", 1),
        ("第二条 跟台人员每年培训一次。", 2),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scan.pdf", blank_pdf(), "没有文字层"),
        ("secret.pdf", encrypted_pdf(), "已加密"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj <<", "已损坏"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "已损坏"),
        ("empty.txt", b"", "空的"),
        ("blank.md", b"   \n\n  ", "空的"),
        ("tags-only.html", b"<html><body><script>x</script></body></html>", "没有可以提取的文字"),
        ("slides.pptx", b"whatever", "不支持的文件类型"),
        ("binary.txt", b"\x00\x01\x02abc", "已损坏"),
    ],
)
def test_broken_files_get_a_clear_chinese_error(name: str, content: bytes, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        load_document(name, content)


def test_oversized_file_is_refused_before_parsing() -> None:
    with pytest.raises(LoadError, match="文件过大"):
        load_document("big.txt", "政策".encode() * 600, max_bytes=1000)


def test_section_markers() -> None:
    assert section_marker("第三条 本通知") == (3, "第三条")
    assert section_marker("二、执行时间") == (2, "二、")
    assert section_marker("（十二）其他") == (4, "（十二）")
    assert section_marker("2026年起") is None


def test_chunks_know_their_section_and_page_and_fit_the_model(embedder) -> None:
    long_item = (
        "（二）" + "医疗机构应当按照规定做好中选产品的采购、使用和结算工作，并接受医保部门的监督检查。" * 12
    )
    pdf = text_pdf([["一、执行要求", "（一）中选结果自2026年3月1日起执行。"], [long_item]])
    doc = load_document("a.pdf", pdf)
    chunker = Chunker(embedder.count_tokens, max_tokens=120)
    passages = chunker.split(doc)
    assert passages[0].section == "一、执行要求（一）" and passages[0].page == 1
    rest = passages[1:]
    assert len(rest) >= 4 and all(p.section == "一、执行要求（二）" and p.page == 2 for p in rest)
    assert all(embedder.count_tokens(p.embed_text) <= 120 for p in passages)
    assert "".join(p.text for p in rest) == long_item  # nothing lost or truncated


def test_an_unbreakable_run_is_cut_to_fit(embedder) -> None:
    from knowledge.loaders import Block, LoadedDocument

    doc = LoadedDocument("t", [Block("骨" * 700)])
    passages = Chunker(embedder.count_tokens, max_tokens=100).split(doc)
    assert "".join(p.text for p in passages) == "骨" * 700
    assert max(p.token_count for p in passages) <= 100
