"""Benchmark bodies (run by ``salesbot bench ...``); each works in a temporary data directory."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bot.handlers_knowledge import knowledge_config
from bot.settings import Settings
from knowledge.evaluation import evaluate, read_questions
from knowledge.manifest import read_manifest
from knowledge.service import Knowledge
from storage.db import create_schema, make_engine


def example_knowledge(settings: Settings, home: Path, manifest: Path) -> Knowledge:
    engine = make_engine(f"sqlite:///{home / 'bench.db'}")
    create_schema(engine)
    config = knowledge_config(settings)
    config.home, config.chroma_url = home, None
    kb = Knowledge.build(engine, config)
    for path, meta in read_manifest(manifest):
        kb.kb.ingest_bytes(path.name, path.read_bytes(), meta, source=str(path))
    return kb


def retrieval_table(settings: Settings, questions: Path, manifest: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="salesbot-bench-") as tmp:
        kb = example_knowledge(settings, Path(tmp), manifest)
        qs = read_questions(questions)
        return [evaluate(kb.retriever, kb.answerer, qs, mode=m) for m in ("dense", "lexical", "hybrid")]
