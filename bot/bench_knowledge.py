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


# ingest throughput ---------------------------------------------------------------------------
def ingest_bench(settings: Settings, manifest: Path, repeats: int = 3) -> dict[str, Any]:
    """Whole pipeline (load, chunk, embed, database, lexical index, Chroma) vs raw
    ``SentenceTransformer.encode`` of the same passages, in the same run, without any cache."""
    import statistics
    import time

    from knowledge import lexicon
    from knowledge.embeddings import Embedder

    items = read_manifest(manifest)
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="salesbot-bench-") as tmp:
            home = Path(tmp)
            engine = make_engine(f"sqlite:///{home / 'bench.db'}")
            create_schema(engine)
            config = knowledge_config(settings)
            config.home, config.chroma_url = home, None
            embedder = Embedder(config.embedding_model, cache_path=None)
            embedder.model  # noqa: B018  (load outside the timing)
            kb = Knowledge.build(engine, config, embedder=embedder)
            lexicon.terms("预热：加载分词词典和拼音表")  # one-time loads, like the model, outside the timing
            start = time.perf_counter()
            results = kb.kb.ingest_many([(p.name, p.read_bytes(), m, str(p)) for p, m in items])
            pipeline = time.perf_counter() - start
            chunks = sum(r.chunks for r in results if not isinstance(r, Exception))
            from sqlmodel import Session, select

            from storage.models import Chunk

            with Session(engine) as session:
                texts = [
                    f"{c.heading}：{c.text}" if c.heading else c.text for c in session.exec(select(Chunk))
                ]
            start = time.perf_counter()
            embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
            encode = time.perf_counter() - start
            runs.append(
                {
                    "pipeline_s": pipeline,
                    "encode_s": encode,
                    "chunks": chunks,
                    "overhead": pipeline / encode - 1,
                    "rest_s": pipeline - embedder.encode_seconds,  # everything but the model, same run
                    "rest_share": (pipeline - embedder.encode_seconds) / encode,
                }
            )
            engine.dispose()
    overheads = [r["overhead"] for r in runs]
    return {
        "documents": len(items),
        "chunks": runs[0]["chunks"],
        "runs": runs,
        "median_pipeline_s": statistics.median(r["pipeline_s"] for r in runs),
        "median_encode_s": statistics.median(r["encode_s"] for r in runs),
        "median_overhead": statistics.median(overheads),
        "min_overhead": min(overheads),
        "max_overhead": max(overheads),
        "median_rest_share": statistics.median(r["rest_share"] for r in runs),
    }


# query latency -------------------------------------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def query_bench(
    settings: Settings,
    manifest: Path,
    questions: Path,
    sizes: list[int],
    seed: int = 7,
    keep: Path | None = None,
) -> list[dict[str, Any]]:
    """p50/p95 of hybrid search (no LLM, query embedding excluded) over synthetic corpora built from
    the example passages (sentences recombined, numbers changed), with random unit vectors."""
    import random
    import re
    import statistics
    import time

    import numpy as np

    from knowledge import lexicon
    from knowledge.base import document_id_for
    from knowledge.embeddings import Embedder
    from knowledge.lexical import LexRow
    from knowledge.vectors import VectorIndex, make_client
    from storage.db import session_scope
    from storage.models import Chunk, Document

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    embedder = Embedder(settings.embedding_model, cache_path=settings.embedding_cache)
    qs = read_questions(questions)
    vectors = embedder.encode([q.question for q in qs])  # outside the timing
    with tempfile.TemporaryDirectory(prefix="salesbot-bench-") as tmp:
        source = example_knowledge(settings, Path(tmp), manifest)
        from sqlmodel import Session, select

        with Session(source.kb.engine) as session:
            sentences = [
                s for c in session.exec(select(Chunk)) for s in re.split(r"(?<=[。；])", c.text) if len(s) > 8
            ]
    term_cache: dict[str, list[str]] = {}

    def terms(sentence: str) -> list[str]:
        if sentence not in term_cache:
            term_cache[sentence] = lexicon.terms(sentence)
        return term_cache[sentence]

    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="salesbot-bench-") as tmp:
            home = Path(tmp) if keep is None else keep / f"q{size}"
            engine = make_engine(f"sqlite:///{home / 'bench.db'}")
            create_schema(engine)
            vector_index = VectorIndex(make_client(path=home / "chroma"))
            kb = Knowledge.build(engine, _cfg(settings, home), embedder=embedder, vectors=vector_index)
            per_doc = 100
            start = time.perf_counter()
            for d in range(0, size, per_doc):
                doc_id = document_id_for(f"synthetic-{d // per_doc:05d}.md")
                rows, chunks, ids = [], [], []
                for n in range(per_doc):
                    picked = rng.sample(sentences, 2)
                    text = "".join(re.sub(r"\d+", lambda _: str(rng.randint(1, 999)), s) for s in picked)
                    cid = f"{doc_id}:v1:{n}"
                    ids.append(cid)
                    chunks.append(
                        Chunk(id=cid, document_id=doc_id, ordinal=n, text=text, section="", content_hash="")
                    )
                    rows.append(LexRow(cid, doc_id, [t for s in picked for t in terms(s)], []))
                with session_scope(engine) as session:
                    session.add(
                        Document(
                            id=doc_id,
                            title=f"合成文档{d // per_doc}",
                            library="policy",
                            content_hash=doc_id,
                            chunk_count=per_doc,
                        )
                    )
                    session.flush()
                    session.add_all(chunks)
                    session.flush()
                    kb.kb.lexical.add(session, rows)
                random_vectors = nprng.normal(size=(per_doc, vectors.shape[1])).astype(np.float32)
                random_vectors /= np.linalg.norm(random_vectors, axis=1, keepdims=True)
                vector_index.add(ids, random_vectors, [{"document_id": doc_id}] * per_doc)
            build_s = time.perf_counter() - start
            for q, v in list(zip(qs, vectors, strict=True))[:5]:  # warm-up
                kb.retriever.search(q.question, vector=v)
            timings = []
            for _ in range(2):
                for q, v in zip(qs, vectors, strict=True):
                    t0 = time.perf_counter()
                    kb.retriever.search(q.question, vector=v)
                    timings.append((time.perf_counter() - t0) * 1000)
            timings.sort()
            results.append(
                {
                    "chunks": size,
                    "queries": len(timings),
                    "build_s": round(build_s, 1),
                    "p50_ms": round(statistics.median(timings), 1),
                    "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
                    "max_ms": round(timings[-1], 1),
                    "rss_mb": round(_rss_mb()),
                }
            )
            engine.dispose()
    return results


def _cfg(settings: Settings, home: Path) -> Any:
    config = knowledge_config(settings)
    config.home, config.chroma_url = home, None
    return config
