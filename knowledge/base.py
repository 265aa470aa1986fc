"""The knowledge base: documents in (all or nothing), out of every index on delete, drift check.

Ingest order: load -> chunk -> embed (no side effects yet) -> one database transaction that writes
the document, its chunks and their lexical terms and removes the previous version's -> vectors
upserted into Chroma -> commit. Any failure rolls the transaction back and deletes the vectors
already written, so a failed ingest leaves no trace. The previous version's vectors are removed
after the commit; if that fails, the leftovers are ignored by retrieval (the database decides what
exists) and reported by ``check``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePath
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from knowledge import lexicon, texts
from knowledge.chunking import Chunker, Passage
from knowledge.embeddings import Embedder, text_hash
from knowledge.lexical import LexicalIndex, LexRow, make_lexical
from knowledge.loaders import DEFAULT_MAX_BYTES, LoadError, load_document
from knowledge.vectors import VectorIndex
from storage.db import session_scope
from storage.models import Chunk, Document
from storage.types import utcnow

LIBRARIES = ("policy", "literature", "sentiment", "case")


class IngestError(ValueError):
    """The document was refused; ``str(err)`` is a Chinese message. Nothing was stored."""


@dataclass
class DocumentMeta:
    library: str = "policy"
    title: str | None = None
    issuer: str | None = None
    region: str | None = None
    effective_date: date | None = None
    products: list[str] = field(default_factory=list)
    doc_id: str | None = None


@dataclass
class IngestResult:
    status: str  # created | replaced | duplicate
    document: Document
    chunks: int
    embedded: int = 0  # passages that needed the model (the rest came from the cache)

    @property
    def message(self) -> str:
        doc = self.document
        if self.status == "duplicate":
            return texts.DUPLICATE.format(title=doc.title, doc_id=doc.id)
        template = texts.REPLACED if self.status == "replaced" else texts.INGESTED
        return template.format(
            title=doc.title,
            doc_id=doc.id,
            version=doc.version,
            chunks=self.chunks,
            library=texts.LIBRARY_NAMES.get(doc.library, doc.library),
        )

    def as_dict(self) -> dict[str, Any]:
        doc = self.document
        return {
            "status": self.status,
            "document_id": doc.id,
            "title": doc.title,
            "library": doc.library,
            "version": doc.version,
            "chunks": self.chunks,
            "source": doc.source,
        }


@dataclass
class CheckReport:
    documents: int
    chunks: int
    vectors: int
    lexical: int
    missing_vectors: list[str] = field(default_factory=list)
    orphan_vectors: list[str] = field(default_factory=list)
    missing_lexical: list[str] = field(default_factory=list)
    orphan_lexical: list[str] = field(default_factory=list)
    bad_counts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_vectors
            or self.orphan_vectors
            or self.missing_lexical
            or self.orphan_lexical
            or self.bad_counts
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()} | {"ok": self.ok}


@dataclass
class _Prepared:
    meta: DocumentMeta
    source: str
    doc_id: str
    content_hash: str
    title: str
    passages: list[Passage]


def document_id_for(name: str) -> str:
    """A readable, stable id from a file name: ``js-drg-2026.md`` -> ``js-drg-2026``."""
    stem = PurePath(name).stem.strip()
    slug = re.sub(r"[^\w.-]+", "-", stem).strip("-.")
    return slug[:80] or hashlib.sha256(name.encode()).hexdigest()[:12]


class KnowledgeBase:
    def __init__(
        self,
        engine: Engine,
        vectors: VectorIndex,
        embedder: Embedder,
        *,
        lexical: LexicalIndex | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_tokens: int = 250,
        context_weight: float = 0.3,
    ):
        self.engine = engine
        self.vectors = vectors
        self.embedder = embedder
        self.lexical = lexical or make_lexical(engine, context_weight)
        self.max_bytes = max_bytes
        self.chunk_tokens = chunk_tokens
        self._chunker: Chunker | None = None

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            limit = min(self.chunk_tokens, self.embedder.max_tokens)
            self._chunker = Chunker(self.embedder.count_tokens, max_tokens=limit)
        return self._chunker

    # ingest -------------------------------------------------------------------------------
    def ingest_bytes(
        self, name: str, content: bytes, meta: DocumentMeta, *, source: str | None = None
    ) -> IngestResult:
        result = self.ingest_many([(name, content, meta, source)])[0]
        if isinstance(result, IngestError):
            raise result
        return result

    def ingest_many(
        self, items: Sequence[tuple[str, bytes, DocumentMeta, str | None]]
    ) -> list[IngestResult | IngestError]:
        """Ingest several files, each all-or-nothing on its own; their passages go to the model in
        one call (fewer, fuller batches). Returns a result or the error for each file, in order."""
        prepared: list[_Prepared | IngestResult | IngestError] = []
        for name, content, meta, source in items:
            try:
                prepared.append(self._prepare(name, content, meta, source))
            except IngestError as exc:
                prepared.append(exc)
        todo = [p for p in prepared if isinstance(p, _Prepared)]
        before = self.embedder.encoded
        vectors = self.embedder.encode([x.embed_text for p in todo for x in p.passages]) if todo else None
        embedded = self.embedder.encoded - before
        out: list[IngestResult | IngestError] = []
        offset = 0
        for item in prepared:
            if not isinstance(item, _Prepared):
                out.append(item)
                continue
            assert vectors is not None
            part = vectors[offset : offset + len(item.passages)]
            offset += len(item.passages)
            try:
                result = self._write(item, part)
                result.embedded = embedded if len(todo) == 1 else 0
                out.append(result)
            except IngestError as exc:
                out.append(exc)
        return out

    def _prepare(
        self, name: str, content: bytes, meta: DocumentMeta, source: str | None
    ) -> _Prepared | IngestResult:
        if meta.library not in LIBRARIES:
            raise IngestError(
                texts.UNKNOWN_LIBRARY.format(library=meta.library, choices="、".join(LIBRARIES))
            )
        try:
            loaded = load_document(name, content, max_bytes=self.max_bytes)
        except LoadError as exc:
            raise IngestError(str(exc)) from exc
        content_hash = text_hash(loaded.text)
        same = self._same_content(content_hash)
        if same is not None:
            return IngestResult("duplicate", same, same.chunk_count)
        passages = self.chunker.split(loaded)
        if not passages:
            raise IngestError(texts.NO_TEXT)
        return _Prepared(
            meta,
            source or name,
            document_id_for(meta.doc_id or name),
            content_hash,
            meta.title or loaded.title,
            passages,
        )

    def _same_content(self, content_hash: str) -> Document | None:
        with Session(self.engine) as session:
            return session.exec(select(Document).where(Document.content_hash == content_hash)).first()

    def _write(self, item: _Prepared, vectors: Any) -> IngestResult:
        same = self._same_content(item.content_hash)  # an identical file earlier in the same batch
        if same is not None:
            return IngestResult("duplicate", same, same.chunk_count)
        meta, source, doc_id, content_hash = item.meta, item.source, item.doc_id, item.content_hash
        title, passages = item.title, item.passages
        new_ids: list[str] = []
        old_ids: list[str] = []
        try:
            with session_scope(self.engine) as session:
                doc = session.get(Document, doc_id)
                status = "replaced" if doc is not None else "created"
                if doc is None:
                    doc = Document(
                        id=doc_id, title=title, library=meta.library, content_hash=content_hash, version=0
                    )
                else:
                    old_ids = list(session.exec(select(Chunk.id).where(Chunk.document_id == doc_id)))
                    self.lexical.delete_document(session, doc_id)
                    for old in session.exec(select(Chunk).where(Chunk.document_id == doc_id)):
                        session.delete(old)
                    session.flush()
                doc.title, doc.library, doc.content_hash = title, meta.library, content_hash
                doc.issuer, doc.region, doc.effective_date = meta.issuer, meta.region, meta.effective_date
                doc.product_codes = list(meta.products)
                doc.source, doc.version, doc.chunk_count = source, doc.version + 1, len(passages)
                doc.updated_at, doc.embedding_model = utcnow(), self.embedder.model_name
                session.add(doc)
                session.flush()
                context_terms = lexicon.terms(title)
                rows, metadatas = [], []
                for n, passage in enumerate(passages):
                    chunk_id = f"{doc_id}:v{doc.version}:{n}"
                    new_ids.append(chunk_id)
                    session.add(
                        Chunk(
                            id=chunk_id,
                            document_id=doc_id,
                            ordinal=n,
                            text=passage.text,
                            section=passage.section,
                            heading=passage.heading,
                            page=passage.page,
                            token_count=passage.token_count,
                            content_hash=text_hash(passage.embed_text),
                        )
                    )
                    rows.append(
                        LexRow(
                            chunk_id,
                            doc_id,
                            lexicon.terms(passage.text),
                            context_terms + lexicon.terms(passage.heading),
                        )
                    )
                    metadatas.append(_vector_meta(doc))
                session.flush()
                self.lexical.add(session, rows)
                self.vectors.add(new_ids, vectors, metadatas)
        except Exception as exc:
            self._forget_vectors(new_ids)
            if isinstance(exc, IngestError):
                raise
            raise IngestError(texts.INGEST_FAILED.format(reason=f"{type(exc).__name__}: {exc}")) from exc
        self._forget_vectors(old_ids)
        return IngestResult(status, doc, len(passages))

    def _forget_vectors(self, ids: Sequence[str]) -> None:
        if ids:
            # a failure here is reported by `kb check`; retrieval ignores vectors without a chunk
            with contextlib.suppress(Exception):
                self.vectors.delete(ids)

    # delete, list, check ------------------------------------------------------------------
    def delete(self, doc_id: str) -> Document:
        with session_scope(self.engine) as session:
            doc = (
                session.get(Document, doc_id)
                or session.exec(select(Document).where(Document.source == doc_id)).first()
            )
            if doc is None:
                raise IngestError(texts.NOT_FOUND.format(doc_id=doc_id))
            ids = list(session.exec(select(Chunk.id).where(Chunk.document_id == doc.id)))
            self.lexical.delete_document(session, doc.id)
            for chunk in session.exec(select(Chunk).where(Chunk.document_id == doc.id)):
                session.delete(chunk)
            session.flush()
            session.delete(doc)
        self.vectors.delete(ids)
        self.vectors.delete_document(doc.id)
        return doc

    def documents(self) -> list[Document]:
        with Session(self.engine) as session:
            return list(session.exec(select(Document).order_by(Document.library, Document.id)))

    def check(self, *, repair: bool = False) -> CheckReport:
        with Session(self.engine) as session:
            chunk_ids = set(session.exec(select(Chunk.id)))
            lexical_ids = self.lexical.all_ids(session)
            docs = list(session.exec(select(Document)))
            counts: dict[str, int] = {}
            for document_id in session.exec(select(Chunk.document_id)):
                counts[document_id] = counts.get(document_id, 0) + 1
        vector_ids = self.vectors.all_ids()
        report = CheckReport(
            documents=len(docs),
            chunks=len(chunk_ids),
            vectors=len(vector_ids),
            lexical=len(lexical_ids),
            missing_vectors=sorted(chunk_ids - vector_ids),
            orphan_vectors=sorted(vector_ids - chunk_ids),
            missing_lexical=sorted(chunk_ids - lexical_ids),
            orphan_lexical=sorted(lexical_ids - chunk_ids),
            bad_counts=sorted(d.id for d in docs if counts.get(d.id, 0) != d.chunk_count),
        )
        if repair and report.orphan_vectors:
            self.vectors.delete(report.orphan_vectors)
        return report


def _vector_meta(doc: Document) -> dict[str, Any]:
    return {
        "document_id": doc.id,
        "library": doc.library,
        "region": doc.region or "",
        "effective_date": int(doc.effective_date.strftime("%Y%m%d")) if doc.effective_date else 0,
    }
