"""Test documents made on the fly: PDFs with a Chinese text layer, scanned and encrypted PDFs, DOCX."""

from __future__ import annotations

import io


def text_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal PDF whose lines of Chinese text are extractable (Type0 font with a ToUnicode map)."""
    chars = sorted({c for page in pages for line in page for c in line})
    cid = {c: i + 1 for i, c in enumerate(chars)}
    bf = []
    for start in range(0, len(chars), 100):
        part = chars[start : start + 100]
        bf.append(
            f"{len(part)} beginbfchar\n"
            + "\n".join(f"<{cid[c]:04X}> <{ord(c):04X}>" for c in part)
            + "\nendbfchar"
        )
    cmap = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(bf)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    )
    objects: list[bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objects)

    def stream(data: str) -> bytes:
        raw = data.encode("latin-1")
        return b"<< /Length %d >>\nstream\n" % len(raw) + raw + b"\nendstream"

    catalog = add("")  # placeholders filled below
    pages_obj = add("")
    descriptor = add(
        "<< /Type /FontDescriptor /FontName /SimSun /Flags 4 /FontBBox [0 -200 1000 900] "
        "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>"
    )
    cid_font = add(
        "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo << /Registry "
        f"(Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {descriptor} 0 R /DW 1000 >>"
    )
    to_unicode = add(stream(cmap))
    font = add(
        f"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H "
        f"/DescendantFonts [{cid_font} 0 R] /ToUnicode {to_unicode} 0 R >>"
    )
    kids = []
    for page in pages:
        ops = ["BT", "/F1 12 Tf", "14 TL", "40 800 Td"]
        for line in page:
            ops.append("<" + "".join(f"{cid[c]:04X}" for c in line) + "> Tj T*")
        ops.append("ET")
        content = add(stream("\n".join(ops)))
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 595 842] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode()
    objects[pages_obj - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    ).encode()
    info = add(f"<< /Title <FEFF{title.encode('utf-16-be').hex().upper()}> >>") if title else None
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R" + (
        f" /Info {info} 0 R" if info else ""
    )
    out.write(trailer.encode() + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def blank_pdf(pages: int = 2) -> bytes:
    """What a scanner produces, as far as text goes: pages without a text layer."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([["第一条 保密文件。"]]))))
    writer.encrypt(user_password="secret", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def docx_bytes(title: str, paragraphs: list[tuple[str, str | None]]) -> bytes:
    """A DOCX: ``paragraphs`` are (text, style) with style None, "Heading 1", "Heading 2" ..."""
    import docx

    document = docx.Document()
    document.add_paragraph(title, style="Title")
    for text, style in paragraphs:
        document.add_paragraph(text, style=style)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()
