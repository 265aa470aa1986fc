"""``salesbot kb ...``, ``salesbot ask`` and ``salesbot bench ...``: the knowledge base."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bot import texts as bot_texts
from bot.app import App
from bot.cli_bench import bench_app
from knowledge import texts
from knowledge.base import LIBRARIES, DocumentMeta, IngestError, IngestResult
from knowledge.loaders import SUPPORTED
from knowledge.manifest import read_manifest
from knowledge.retrieval import Filters
from knowledge.service import Knowledge

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_MANIFEST = EXAMPLES / "knowledge" / "manifest.yaml"

kb_app = typer.Typer(help="知识库：入库、列表、删除、一致性检查", no_args_is_help=True)
_build: Callable[[], App] | None = None


def _knowledge() -> tuple[App, Knowledge]:
    assert _build is not None
    application = _build()
    assert application.knowledge is not None
    return application, application.knowledge()


def _echo_json(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, default=str))


# ingest ------------------------------------------------------------------------------------
def _expand(paths: list[Path], meta: DocumentMeta) -> list[tuple[Path, DocumentMeta]]:
    """Files to ingest: a manifest brings its own metadata, a folder its supported files."""
    out: list[tuple[Path, DocumentMeta]] = []
    for path in paths:
        if path.suffix in (".yaml", ".yml"):
            out.extend(read_manifest(path))
        elif path.is_dir():
            out.extend((p, meta) for p in sorted(path.iterdir()) if p.suffix.lower() in SUPPORTED)
        else:
            out.append((path, meta))
    return out


def ingest_files(
    kb: Knowledge,
    items: list[tuple[Path, DocumentMeta]],
    *,
    as_json: bool = False,
    quiet: bool = False,
    batch: int = 16,
    on_ingest: Callable[[IngestResult], str | None] | None = None,
) -> int:
    """Ingest each file on its own (one failure does not stop the rest), ``batch`` files per call to
    the model; returns the number of failures."""
    from rich.console import Console
    from rich.progress import Progress

    failures = 0
    progress = Progress(
        transient=True, disable=quiet or as_json or len(items) < 3, console=Console(stderr=True)
    )
    with progress:
        task = progress.add_task("入库中", total=len(items))
        for start in range(0, len(items), batch):
            group = items[start : start + batch]
            readable: list[tuple[str, bytes, DocumentMeta, str | None]] = []
            outcomes: dict[int, IngestResult | IngestError | OSError] = {}
            for i, (path, meta) in enumerate(group):
                try:
                    readable.append((path.name, path.read_bytes(), meta, str(path)))
                except OSError as exc:
                    outcomes[i] = exc
            results = iter(kb.kb.ingest_many(readable))
            for i, (path, _) in enumerate(group):
                outcome = outcomes.get(i) or next(results)
                if isinstance(outcome, IngestResult):
                    record = {"file": str(path), **outcome.as_dict(), "error": None}
                    line = f"{path}: {outcome.message}"
                    triggered = on_ingest(outcome) if on_ingest is not None else None
                    if triggered:
                        record["pushes"] = triggered
                        line += "\n" + triggered
                else:
                    failures += 1
                    reason = (
                        texts.INGEST_FAILED.format(reason=outcome)
                        if isinstance(outcome, OSError)
                        else outcome
                    )
                    record = {"file": str(path), "status": "failed", "error": str(reason)}
                    line = f"{path}: {reason}"
                progress.advance(task)
                if as_json:
                    _echo_json(record)
                elif not quiet or record["status"] == "failed":
                    typer.echo(line, err=record["status"] == "failed")
    return failures


@kb_app.command("ingest")
def kb_ingest(
    paths: Annotated[list[Path], typer.Argument(help="文件、文件夹或清单（manifest.yaml）")],
    library: Annotated[str, typer.Option(help=f"分类：{' | '.join(LIBRARIES)}")] = "policy",
    region: Annotated[str | None, typer.Option(help="地区，如 江苏、全国")] = None,
    issuer: Annotated[str | None, typer.Option(help="发布机构")] = None,
    effective_date: Annotated[str | None, typer.Option(help="生效日期 YYYY-MM-DD")] = None,
    title: Annotated[str | None, typer.Option(help="标题（默认取文件里的标题）")] = None,
    product: Annotated[list[str] | None, typer.Option(help="涉及的产品编码，可重复")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="每个文件输出一行 JSON")] = False,
    no_push: Annotated[bool, typer.Option("--no-push", help="只入库，不做影响分析、不排队推送")] = False,
) -> None:
    """入库文档：全部成功或不留痕迹；相同内容不重复入库；同名文件入库为新版本。"""
    when = None
    if effective_date:
        try:
            when = date.fromisoformat(effective_date)
        except ValueError:
            typer.echo(texts.BAD_DATE.format(value=effective_date), err=True)
            raise typer.Exit(2) from None
    meta = DocumentMeta(
        library=library,
        title=title,
        issuer=issuer,
        region=region,
        effective_date=when,
        products=list(product or []),
    )
    application, kb = _knowledge()
    from bot.pushes import after_ingest

    failures = ingest_files(kb, _expand(paths, meta), as_json=as_json,
                            on_ingest=None if no_push else
                            (lambda result: after_ingest(application.engine, application.settings, result)))
    raise typer.Exit(1 if failures else 0)


@kb_app.command("list")
def kb_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """列出知识库里的文档。"""
    _, kb = _knowledge()
    documents = kb.kb.documents()
    if as_json:
        for d in documents:
            _echo_json(
                {
                    "document_id": d.id,
                    "title": d.title,
                    "library": d.library,
                    "issuer": d.issuer,
                    "region": d.region,
                    "effective_date": d.effective_date,
                    "products": d.product_codes,
                    "version": d.version,
                    "chunks": d.chunk_count,
                    "source": d.source,
                }
            )
        return
    if not documents:
        typer.echo(texts.DOCS_EMPTY)
    for d in documents:
        typer.echo(
            f"{d.id}\t{d.library}\tv{d.version}\t{d.chunk_count} 段\t{d.effective_date or '—'}\t《{d.title}》"
        )


@kb_app.command("delete")
def kb_delete(
    doc: Annotated[str, typer.Argument(help="文档 id（kb list 第一列）或入库时的文件路径")],
) -> None:
    """从数据库、向量库和全文索引中删除一个文档。"""
    _, kb = _knowledge()
    try:
        removed = kb.kb.delete(doc)
    except IngestError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(texts.DELETED.format(title=removed.title, doc_id=removed.id, chunks=removed.chunk_count))


@kb_app.command("check")
def kb_check(
    repair: Annotated[bool, typer.Option(help="删除向量库里多余的向量")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """检查数据库、Chroma 向量库和全文索引是否一致；不一致时退出码为 1。"""
    _, kb = _knowledge()
    report = kb.kb.check(repair=repair)
    if as_json:
        _echo_json(report.as_dict())
    else:
        typer.echo(
            f"文档 {report.documents}，段落 {report.chunks}，向量 {report.vectors}，全文索引 {report.lexical}"
        )
        for label, items in (
            ("缺少向量", report.missing_vectors),
            ("多余向量", report.orphan_vectors),
            ("缺少全文索引", report.missing_lexical),
            ("多余全文索引", report.orphan_lexical),
            ("段落数不符的文档", report.bad_counts),
        ):
            if items:
                typer.echo(f"{label} {len(items)}：{', '.join(items[:10])}{' …' if len(items) > 10 else ''}")
        typer.echo("一致" if report.ok else "发现不一致")
    raise typer.Exit(0 if report.ok else 1)


# ask ---------------------------------------------------------------------------------------
def ask(
    question: Annotated[str, typer.Argument(help="问题；「-」表示从标准输入逐行读取")],
    user: Annotated[str, typer.Option("--as", help="提问的用户（组织文件里的 id）")],
    as_json: Annotated[bool, typer.Option("--json", help="每个问题输出一行 JSON")] = False,
    library: Annotated[list[str] | None, typer.Option(help="只在这些分类里找")] = None,
    region: Annotated[str | None, typer.Option(help="只看该地区和全国的文件")] = None,
    product: Annotated[str | None, typer.Option(help="只看涉及该产品编码的文件")] = None,
) -> None:
    """向知识库提问：给出答案和编号出处；没有依据时明确说不知道。"""
    application, kb = _knowledge()
    if application.directory.get(user) is None:
        known = ", ".join(application.directory.all_ids()) or "（空，请先 salesbot seed）"
        typer.echo(bot_texts.UNKNOWN_USER_CLI.format(user=user, known=known), err=True)
        raise typer.Exit(2)
    questions = [line.strip() for line in sys.stdin if line.strip()] if question == "-" else [question]
    filters = Filters(library=library or None, region=region, product=product)
    for q in questions:
        answer = kb.ask(q, user=user, filters=filters)
        if as_json:
            _echo_json(answer.as_dict())
        else:
            typer.echo(f"问：{q}\n{answer.text}\n")


def ingest_examples(application: App) -> str:
    """The example documents with their manifest metadata; quick when already there."""
    assert application.knowledge is not None
    kb = application.knowledge()
    items = read_manifest(EXAMPLE_MANIFEST)
    before = len(kb.kb.documents())
    failures = ingest_files(kb, items, quiet=True)
    after = len(kb.kb.documents())
    return f"示例知识库：{after} 篇文档（本次新增 {after - before}，失败 {failures}）"


def register(app: typer.Typer, build: Callable[[], App]) -> None:
    global _build
    _build = build
    app.add_typer(kb_app, name="kb")
    app.command()(ask)
    from bot.cli_kb_bench import register_bench

    register_bench(bench_app, _knowledge)
