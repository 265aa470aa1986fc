"""One object for everything the bot and the CLI do with the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from knowledge.answer import Answer, AnswerConfig, Answerer, make_llm
from knowledge.base import KnowledgeBase
from knowledge.embeddings import Embedder
from knowledge.retrieval import Filters, RetrievalConfig, Retriever
from knowledge.vectors import VectorIndex, make_client


@dataclass
class KnowledgeConfig:
    home: Path
    chroma_url: str | None = None
    embedding_model: str | None = None
    embedding_cache: Path | None = None
    max_bytes: int = 20 * 1024 * 1024
    chunk_tokens: int = 250
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = 20.0


class Knowledge:
    def __init__(self, kb: KnowledgeBase, retriever: Retriever, answerer: Answerer):
        self.kb, self.retriever, self.answerer = kb, retriever, answerer

    @classmethod
    def build(
        cls,
        engine: Engine,
        config: KnowledgeConfig,
        *,
        embedder: Embedder | None = None,
        vectors: VectorIndex | None = None,
    ) -> Knowledge:
        embedder = embedder or Embedder(config.embedding_model, cache_path=config.embedding_cache)
        if vectors is None:
            client = make_client(path=config.home / "chroma", url=config.chroma_url)
            vectors = VectorIndex(client)
        kb = KnowledgeBase(
            engine, vectors, embedder, max_bytes=config.max_bytes, chunk_tokens=config.chunk_tokens
        )
        retriever = Retriever(kb, config.retrieval)
        llm: Any = None
        if config.llm_base_url and config.llm_model:
            llm = make_llm(config.llm_base_url, config.llm_model, config.llm_api_key, config.llm_timeout)
        return cls(kb, retriever, Answerer(retriever, config.answer, llm=llm, llm_timeout=config.llm_timeout))

    def ask(self, question: str, *, user: str | None = None, filters: Filters | None = None) -> Answer:
        return self.answerer.ask(question, user=user, filters=filters)
