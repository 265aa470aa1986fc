"""``salesbot bench retrieval|ingest|query``: the knowledge base's benchmarks (see BENCHMARKS.md)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def register_bench(bench: typer.Typer, knowledge: Callable[[], Any]) -> None:
    @bench.command("retrieval")
    def retrieval(
        questions: Annotated[Path, typer.Option(help="问题集 JSONL")] = EXAMPLES / "eval" / "questions.jsonl",
        manifest: Annotated[Path, typer.Option(help="文档清单")] = EXAMPLES / "knowledge" / "manifest.yaml",
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """检索质量：dense、lexical、hybrid 的 recall@5、passage@5、MRR 和拒答率（在临时目录里）。"""
        from bot.bench import retrieval_table

        rows = retrieval_table(knowledge()[0].settings, questions, manifest)
        if as_json:
            for row in rows:
                typer.echo(json.dumps(row, ensure_ascii=False))
            return
        typer.echo(
            f"{'mode':<8} {'recall@5':>9} {'passage@5':>10} {'MRR':>6} {'refused(unans.)':>16} "
            f"{'answered(ans.)':>15}"
        )
        for r in rows:
            typer.echo(
                f"{r['mode']:<8} {r['recall@5']:>9.3f} {r['passage@5']:>10.3f} {r['mrr']:>6.3f} "
                f"{r['refused_unanswerable']:>16.3f} {r['answered_answerable']:>15.3f}"
            )

    _ = tempfile
