"""The dense index: a Chroma collection holding one vector per chunk (id = chunk id).

Embedded ``PersistentClient`` under the data directory by default, ``HttpClient`` for a Chroma
server. Chroma never embeds anything itself (its default embedding function would download a
model): vectors always come from ``knowledge.embeddings``. The database is the source of truth;
a vector whose chunk is not in the database is ignored at query time and reported by ``kb check``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

COLLECTION = "salesbot_chunks"


def make_client(*, path: Path | None = None, url: str | None = None) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if url:
        parsed = urlparse(url)
        return chromadb.HttpClient(
            host=parsed.hostname or "localhost",
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=settings,
        )
    if path is None:
        return chromadb.EphemeralClient(settings=settings)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class VectorIndex:
    def __init__(self, client: Any, name: str = COLLECTION):
        if len(name) < 3:
            raise ValueError("Chroma collection names need at least 3 characters")
        self.client = client
        self.name = name
        self.collection = client.get_or_create_collection(
            name=name, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]], batch: int = 4000
    ) -> None:
        for start in range(0, len(ids), batch):
            end = start + batch
            self.collection.upsert(
                ids=list(ids[start:end]),
                embeddings=np.asarray(vectors[start:end]),
                metadatas=list(metadatas[start:end]),
            )

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 4000):
            self.collection.delete(ids=list(ids[start : start + 4000]))

    def delete_document(self, document_id: str) -> None:
        self.collection.delete(where={"document_id": document_id})

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self.collection.get(ids=list(ids), include=["embeddings"])
        return {
            i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"], strict=True)
        }

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset, page = 0, 10000
        while True:
            got = self.collection.get(include=[], limit=page, offset=offset)
            out.update(got["ids"])
            if len(got["ids"]) < page:
                return out
            offset += page

    def count(self) -> int:
        return int(self.collection.count())

    def query(
        self, vector: np.ndarray, k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) best first, optionally only within ``document_ids``."""
        if document_ids is not None and not document_ids:
            return []
        where = None
        if document_ids is not None:
            ids = list(document_ids)
            where = {"document_id": ids[0]} if len(ids) == 1 else {"document_id": {"$in": ids}}
        got = self.collection.query(
            query_embeddings=[np.asarray(vector)], n_results=k, where=where, include=["distances"]
        )
        return [(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)]
