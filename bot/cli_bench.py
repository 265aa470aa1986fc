"""The ``salesbot bench`` group; each area adds its benchmark command to it."""

import typer

bench_app = typer.Typer(help="性能基准（结果记录在 BENCHMARKS.md）", no_args_is_help=True)
