"""``salesbot bench retrieval|ingest|query``: the knowledge base's benchmarks (see BENCHMARKS.md)."""

from __future__ import annotations

import json
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
        from bot.bench_knowledge import retrieval_table

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

    @bench.command("ingest")
    def ingest(
        manifest: Annotated[Path, typer.Option(help="文档清单")] = EXAMPLES / "knowledge" / "manifest.yaml",
        repeats: Annotated[int, typer.Option(help="重复次数")] = 3,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """入库吞吐：整条流水线 vs 同一批段落的 SentenceTransformer.encode（同一次运行，无缓存）。"""
        from bot.bench_knowledge import ingest_bench

        result = ingest_bench(knowledge()[0].settings, manifest, repeats)
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
            return
        for r in result["runs"]:
            typer.echo(
                f"pipeline {r['pipeline_s']:.2f} s  encode {r['encode_s']:.2f} s  "
                f"overhead {r['overhead']:+.1%}  non-model work {r['rest_s']:.2f} s "
                f"= {r['rest_share']:.1%} of encode  ({r['chunks']} chunks)"
            )
        typer.echo(
            f"median: pipeline {result['median_pipeline_s']:.2f} s, "
            f"encode {result['median_encode_s']:.2f} s, "
            f"overhead {result['median_overhead']:+.1%} "
            f"(min {result['min_overhead']:+.1%}, max {result['max_overhead']:+.1%}); "
            f"non-model work {result['median_rest_share']:.1%} of encode"
        )

    @bench.command("query")
    def query(
        sizes: Annotated[str, typer.Option(help="段落数，逗号分隔")] = "1000,10000,100000",
        manifest: Annotated[Path, typer.Option(help="文档清单")] = EXAMPLES / "knowledge" / "manifest.yaml",
        questions: Annotated[Path, typer.Option(help="问题集 JSONL")] = EXAMPLES / "eval" / "questions.jsonl",
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """查询延迟 p50/p95（不含 LLM 和问题向量化）与常驻内存，合成语料 + 随机向量。"""
        from bot.bench_knowledge import query_bench

        rows = query_bench(knowledge()[0].settings, manifest, questions, [int(s) for s in sizes.split(",")])
        for row in rows:
            if as_json:
                typer.echo(json.dumps(row))
            else:
                typer.echo(
                    f"{row['chunks']:>7} chunks  p50 {row['p50_ms']:6.1f} ms  p95 {row['p95_ms']:6.1f} ms  "
                    f"max {row['max_ms']:6.1f} ms  RSS {row['rss_mb']} MB  (build {row['build_s']} s)"
                )
