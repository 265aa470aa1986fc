"""Shared fixtures: a fresh database per test on SQLite and, when reachable, PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from storage.db import create_schema, make_engine

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PG_ADMIN_URL = os.environ.get("SALESBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(_libpq(PG_ADMIN_URL), connect_timeout=3):
            return True
    except Exception:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


PG_AVAILABLE = _postgres_reachable()
if os.environ.get("CI") and not PG_AVAILABLE:
    raise RuntimeError(f"CI must test PostgreSQL too, but {PG_ADMIN_URL} is not reachable")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    if not PG_AVAILABLE:
        pytest.skip("PostgreSQL not reachable")
    import psycopg

    name = f"salesbot_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over a real SQLite file and the machine's real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'salesbot.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'salesbot.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


# knowledge base (issue 3) ------------------------------------------------------------------
EMBEDDING_CACHE = Path.home() / ".cache" / "salesbot" / "embeddings.sqlite"


@pytest.fixture(scope="session")
def embedder():
    """The bundled MiniLM, loaded once per test session; vectors cached by text hash across runs."""
    from knowledge.embeddings import Embedder

    return Embedder(cache_path=EMBEDDING_CACHE)


@pytest.fixture(scope="session")
def example_knowledge(embedder, tmp_path_factory: pytest.TempPathFactory):
    """examples/knowledge ingested once per session (SQLite + embedded Chroma); read-only for tests."""
    from knowledge.manifest import read_manifest
    from knowledge.service import Knowledge, KnowledgeConfig

    home = tmp_path_factory.mktemp("example-kb")
    eng = make_engine(f"sqlite:///{home / 'salesbot.db'}")
    create_schema(eng)
    kb = Knowledge.build(eng, KnowledgeConfig(home=home), embedder=embedder)
    for path, meta in read_manifest(EXAMPLES / "knowledge" / "manifest.yaml"):
        kb.kb.ingest_bytes(path.name, path.read_bytes(), meta, source=str(path))
    return kb
