#!/usr/bin/env python3
"""Verify the example knowledge base (examples/knowledge) and eval set (examples/eval).

Checks:
  * manifest.yaml lists every document file and every listed file exists;
    manifest fields are well-formed (library, region, product codes, date);
  * each document is 800-3000 Chinese characters;
  * questions.jsonl: ids unique, required fields present, answerable questions have
    gold documents from the manifest and an answer (10-60 chars) that is a verbatim
    substring of a gold document's text (visible text for .html) without spanning a
    paragraph break; unanswerable questions have empty gold_documents and answer;
  * counts: >=14 documents, >=8 policy, >=2 literature, >=2 sentiment, >=1 case,
    2-3 html, >=48 questions, >=10 unanswerable, every document gold for >=2 questions.

Usage: python verify_eval.py   (exit code 0 = pass)
Dependencies: standard library; uses pyyaml if importable, otherwise a minimal parser
sufficient for manifest.yaml.
"""
import html
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
KB = HERE.parent / "knowledge"
MANIFEST = KB / "manifest.yaml"
QUESTIONS = HERE / "questions.jsonl"

LIBRARIES = {"policy", "literature", "sentiment", "case"}
REGIONS = {"北京", "江苏", "全国"}
PRODUCTS = {"GK-TR01", "GK-JZ02", "GK-GJ03", "XN-ZJ01", "XN-QN02",
            "YX-CT01", "YX-US02", "SW-IV01"}
DOC_SUFFIXES = {".md", ".txt", ".html"}
REQUIRED_FIELDS = ("file", "library", "title", "issuer", "region", "effective_date", "products")

errors = []


def err(msg):
    errors.append(msg)


# ---------------------------------------------------------------- manifest
def _scalar(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    if v.startswith("[") and v.endswith("]"):
        inner = v[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    return v


def minimal_yaml_documents(text):
    """Parse the simple `documents:` list-of-flat-mappings layout used by manifest.yaml."""
    docs, cur = [], None
    for raw in text.splitlines():
        line = re.sub(r"\s+#.*$", "", raw) if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "documents:":
            continue
        m = re.match(r"^\s*-\s+(\w+):\s*(.*)$", line)
        if m:
            cur = {m.group(1): _scalar(m.group(2))}
            docs.append(cur)
            continue
        m = re.match(r"^\s+(\w+):\s*(.*)$", line)
        if m and cur is not None:
            cur[m.group(1)] = _scalar(m.group(2))
    return docs


def load_manifest():
    text = MANIFEST.read_text(encoding="utf-8")
    try:
        import yaml  # type: ignore
        data = yaml.safe_load(text)
        return data.get("documents", []) if isinstance(data, dict) else []
    except ImportError:
        return minimal_yaml_documents(text)


# ---------------------------------------------------------------- documents
BLOCK_TAGS = r"h[1-6]|p|div|li|ul|ol|br|tr|table|section|article|title"


def visible_text(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", "", text)
        text = re.sub(rf"(?i)</?(?:{BLOCK_TAGS})\b[^>]*>", "\n\n", text)
        text = re.sub(r"<[^>]+>", "", text)
        text = html.unescape(text)
    return text


def paragraphs(text):
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def main():
    if not MANIFEST.exists():
        print(f"FAIL: {MANIFEST} missing")
        return 1
    docs = load_manifest()
    files_on_disk = {p.name for p in KB.iterdir() if p.is_file() and p.suffix in DOC_SUFFIXES}

    listed = Counter(d.get("file") for d in docs)
    for f, n in listed.items():
        if n > 1:
            err(f"manifest: {f} listed {n} times")
    for f in sorted(set(listed) - files_on_disk):
        err(f"manifest: {f} listed but not found in {KB}")
    for f in sorted(files_on_disk - set(listed)):
        err(f"manifest: {f} exists but is not listed")

    for d in docs:
        f = d.get("file", "?")
        for k in REQUIRED_FIELDS:
            if k not in d:
                err(f"manifest {f}: missing field {k}")
        if d.get("library") not in LIBRARIES:
            err(f"manifest {f}: bad library {d.get('library')!r}")
        if d.get("region") not in REGIONS:
            err(f"manifest {f}: bad region {d.get('region')!r}")
        prods = d.get("products")
        if not isinstance(prods, list) or not set(prods) <= PRODUCTS:
            err(f"manifest {f}: bad products {prods!r}")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(d.get("effective_date", ""))):
            err(f"manifest {f}: bad effective_date {d.get('effective_date')!r}")

    texts, paras = {}, {}
    for f in sorted(files_on_disk):
        t = visible_text(KB / f)
        texts[f], paras[f] = t, paragraphs(t)
        n = len(re.findall(r"[\u4e00-\u9fff]", t))
        if not 800 <= n <= 3000:
            err(f"{f}: {n} Chinese characters (want 800-3000)")

    # ------------------------------------------------------------ questions
    rows = []
    for ln, line in enumerate(QUESTIONS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            err(f"questions.jsonl line {ln}: invalid JSON ({e})")

    ids = Counter(r.get("id") for r in rows)
    for i, n in ids.items():
        if n > 1:
            err(f"question id {i} used {n} times")

    gold_count = Counter()
    for r in rows:
        qid = r.get("id", "?")
        for k in ("id", "question", "answerable", "gold_documents", "answer"):
            if k not in r:
                err(f"{qid}: missing field {k}")
        if not str(r.get("question", "")).strip():
            err(f"{qid}: empty question")
        gold, ans = r.get("gold_documents") or [], r.get("answer", "")
        if r.get("answerable") is True:
            if not gold:
                err(f"{qid}: answerable but no gold_documents")
            bad = [g for g in gold if g not in texts or g not in listed]
            if bad:
                err(f"{qid}: unknown gold documents {bad}")
            if not 10 <= len(ans) <= 60:
                err(f"{qid}: answer length {len(ans)} (want 10-60)")
            if "\n" in ans:
                err(f"{qid}: answer contains a line break")
            if not any(ans in texts.get(g, "") for g in gold):
                err(f"{qid}: answer is not a verbatim substring of {gold}: {ans}")
            elif not any(ans in p for g in gold for p in paras.get(g, [])):
                err(f"{qid}: answer spans a paragraph break")
            for g in gold:
                gold_count[g] += 1
        elif r.get("answerable") is False:
            if gold or ans:
                err(f"{qid}: unanswerable must have empty gold_documents and answer")
        else:
            err(f"{qid}: answerable must be true/false")

    # ---------------------------------------------------------------- counts
    libs = Counter(d.get("library") for d in docs)
    n_html = sum(1 for f in files_on_disk if f.endswith(".html"))
    n_unans = sum(1 for r in rows if r.get("answerable") is False)
    checks = [
        (len(docs) >= 14, f"documents: {len(docs)} (>=14)"),
        (libs["policy"] >= 8, f"policy: {libs['policy']} (>=8)"),
        (libs["literature"] >= 2, f"literature: {libs['literature']} (>=2)"),
        (libs["sentiment"] >= 2, f"sentiment: {libs['sentiment']} (>=2)"),
        (libs["case"] >= 1, f"case: {libs['case']} (>=1)"),
        (2 <= n_html <= 3, f"html documents: {n_html} (2-3)"),
        (len(rows) >= 48, f"questions: {len(rows)} (>=48)"),
        (n_unans >= 10, f"unanswerable: {n_unans} (>=10)"),
    ]
    for ok, msg in checks:
        if not ok:
            err("count: " + msg)
    for f in sorted(files_on_disk):
        if gold_count[f] < 2:
            err(f"{f}: gold for only {gold_count[f]} question(s) (want >=2)")

    print("; ".join(msg for _, msg in checks))
    print("gold per document: " + ", ".join(f"{f}={gold_count[f]}" for f in sorted(files_on_disk)))
    if errors:
        print(f"\nFAIL: {len(errors)} problem(s)")
        for e in errors:
            print("  - " + e)
        return 1
    print("\nPASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
