"""Chat side of the knowledge base: plain-text questions, admin file uploads, /docs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import cache

from sqlalchemy.engine import Engine

from bot.messages import Reply
from bot.router import Router, Turn
from bot.settings import Settings
from knowledge import texts
from knowledge.answer import AnswerConfig
from knowledge.base import LIBRARIES, DocumentMeta, IngestError, IngestResult
from knowledge.retrieval import RetrievalConfig
from knowledge.service import Knowledge, KnowledgeConfig
from storage.models import Role


def knowledge_config(settings: Settings) -> KnowledgeConfig:
    return KnowledgeConfig(
        home=settings.home,
        chroma_url=settings.chroma_url,
        embedding_model=settings.embedding_model,
        embedding_cache=settings.embedding_cache,
        max_bytes=int(settings.max_upload_mb * 2**20),
        chunk_tokens=settings.chunk_tokens,
        retrieval=RetrievalConfig(
            dense_weight=settings.dense_weight,
            library_weights=settings.library_weights,
            issuer_weights=settings.issuer_weights,
        ),
        answer=AnswerConfig(min_relevance=settings.min_relevance, history_turns=settings.history_turns),
        llm_base_url=settings.llm_base_url,
        llm_model=settings.llm_model,
        llm_api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        llm_timeout=settings.llm_timeout,
    )


def knowledge_factory(settings: Settings, engine: Engine) -> Callable[[], Knowledge]:
    """Builds the knowledge base on first use (Chroma and the model are not needed for /help)."""
    return cache(lambda: Knowledge.build(engine, knowledge_config(settings)))


def register_knowledge(router: Router, knowledge: Callable[[], Knowledge],
                       on_ingest: Callable[[IngestResult], str | None] | None = None) -> None:
    """``on_ingest(result)`` (impact analysis and pushes) may add a paragraph to the upload summary."""
    async def ask(turn: Turn) -> Reply:
        kb = knowledge()
        answer = await asyncio.to_thread(kb.ask, turn.args, user=turn.user.id)
        return Reply(answer.text)

    router.on_text(ask)

    async def upload(turn: Turn) -> Reply:
        attachment = turn.msg.file
        assert attachment is not None
        names = {**{lib: lib for lib in LIBRARIES}, **{v: k for k, v in texts.LIBRARY_NAMES.items()}}
        found = re.search("|".join(names), turn.args or "")
        meta = DocumentMeta(library=names[found.group(0)] if found else "policy")
        kb = knowledge()
        try:
            result = await asyncio.to_thread(kb.kb.ingest_bytes, attachment.name, attachment.content, meta)
        except IngestError as exc:
            return Reply(str(exc))
        doc = result.document
        triggered = await asyncio.to_thread(on_ingest, result) if on_ingest is not None else None
        return Reply(
            texts.UPLOAD_SUMMARY.format(
                result=result.message,
                title=doc.title,
                issuer=doc.issuer or "—",
                region=doc.region or "—",
                date=doc.effective_date or "—",
                products="、".join(doc.product_codes) or "—",
            )
            + ("" if found else "\n" + texts.UPLOAD_HELP)
            + (f"\n\n{triggered}" if triggered else "")
        )

    router.on_file(upload, roles=[Role.admin])

    @router.command("docs", "查看知识库里的文档")
    async def docs(turn: Turn) -> Reply:
        documents = knowledge().kb.documents()
        if not documents:
            return Reply(texts.DOCS_EMPTY)
        lines = [texts.DOCS_HEADER.format(count=len(documents))]
        lines += [
            f"· 《{d.title}》（{texts.LIBRARY_NAMES.get(d.library, d.library)}，{d.effective_date or '—'}）"
            for d in documents
        ]
        return Reply("\n".join(lines))
