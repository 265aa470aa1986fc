"""Hybrid retrieval: lexical (jieba + bigrams + pinyin, BM25) fused with dense (Chroma) by weighted
reciprocal rank, then scaled by library and issuer weights; filters by library, region, product, date.

Why weighted: the bundled English MiniLM is weak on Chinese. On the example eval set an equal
fusion loses to the lexical ranking alone, while a small dense weight breaks lexical ties and
helps paraphrased questions (see ``salesbot bench retrieval``).

``relevance`` is an absolute measure used to refuse: the IDF-weighted share of the question's
content words that the passage (with its title and heading) contains, where a word also counts as
found through its character bigrams or their pinyin (typos).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from knowledge import lexicon
from knowledge.base import KnowledgeBase
from storage.models import Chunk, Document

NATIONWIDE = "全国"
PLACES = tuple(
    lexicon._split("""
北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南
湖北 湖南 广东 海南 四川 贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆
香港 澳门 南京 苏州 无锡 常州 徐州 南通 杭州 宁波 广州 深圳 成都 武汉 西安 郑州 济南
青岛 长沙 沈阳 大连 厦门 福州 合肥 昆明 苏北 苏南
""")
)


@dataclass
class Filters:
    library: Sequence[str] | None = None
    region: str | None = None  # documents of this region plus nationwide ones
    product: str | None = None
    since: date | None = None  # effective on or after
    until: date | None = None  # effective on or before

    @property
    def empty(self) -> bool:
        return not (self.library or self.region or self.product or self.since or self.until)


@dataclass
class RetrievalConfig:
    dense_weight: float = 0.1
    lexical_weight: float = 1.0
    rrf_k: int = 20
    candidates: int = 40
    rerank_depth: int = 15
    relevance_boost: float = 1.0
    cue_boost: float = 0.3
    library_weights: dict[str, float] = field(default_factory=dict)
    issuer_weights: dict[str, float] = field(default_factory=dict)  # issuer substring -> weight


@dataclass
class Hit:
    chunk: Chunk
    document: Document
    score: float
    lexical_rank: int | None = None
    dense_rank: int | None = None
    relevance: float = 0.0
    missing: tuple[str, ...] = ()  # question nouns unknown to the whole knowledge base and not found here


class Retriever:
    def __init__(self, kb: KnowledgeBase, config: RetrievalConfig | None = None):
        self.kb = kb
        self.config = config or RetrievalConfig()

    def weight(self, doc: Document) -> float:
        w = self.config.library_weights.get(doc.library, 1.0)
        for needle, issuer_weight in self.config.issuer_weights.items():
            names = (needle, *lexicon.SYNONYMS.get(needle, ()))
            if needle and doc.issuer and any(n in doc.issuer for n in names):
                w *= issuer_weight
        return w

    def allowed_documents(self, session: Session, filters: Filters | None) -> list[str] | None:
        if filters is None or filters.empty:
            return None
        query = select(Document)
        if filters.library:
            query = query.where(col(Document.library).in_(list(filters.library)))
        if filters.region:
            query = query.where(col(Document.region).in_([filters.region, NATIONWIDE]))
        if filters.since:
            query = query.where(col(Document.effective_date) >= filters.since)
        if filters.until:
            query = query.where(col(Document.effective_date) <= filters.until)
        docs = list(session.exec(query))
        if filters.product:
            docs = [d for d in docs if filters.product in (d.product_codes or [])]
        return [d.id for d in docs]

    def search(
        self,
        question: str,
        *,
        k: int = 5,
        filters: Filters | None = None,
        mode: str = "hybrid",
        focus: str | None = None,
        vector: Any = None,
    ) -> list[Hit]:
        """Best passages for ``question``; ``mode`` is hybrid, lexical or dense. ``focus``: the part of
        the question relevance is judged on (a follow-up is searched with its context, judged alone)."""
        cfg = self.config
        with Session(self.kb.engine) as session:
            allowed = self.allowed_documents(session, filters)
            lexical: list[tuple[str, float]] = []
            dense: list[tuple[str, float]] = []
            if mode in ("hybrid", "lexical"):
                lexical = self.kb.lexical.search(
                    session, lexicon.query_terms(question), cfg.candidates, allowed
                )
            if mode in ("hybrid", "dense"):
                if vector is None:
                    vector = self.kb.embedder.encode_query(question)
                dense = self.kb.vectors.query(vector, cfg.candidates, allowed)
            scores: dict[str, float] = {}
            lex_rank = {cid: r for r, (cid, _) in enumerate(lexical, start=1)}
            dense_rank = {cid: r for r, (cid, _) in enumerate(dense, start=1)}
            lw = cfg.lexical_weight if mode != "dense" else 1.0
            dw = cfg.dense_weight if mode != "lexical" else 0.0
            if mode == "dense":
                dw = 1.0
            for cid, r in lex_rank.items():
                scores[cid] = scores.get(cid, 0.0) + lw / (cfg.rrf_k + r)
            for cid, r in dense_rank.items():
                scores[cid] = scores.get(cid, 0.0) + dw / (cfg.rrf_k + r)
            if not scores:
                return []
            chunks = {c.id: c for c in session.exec(select(Chunk).where(col(Chunk.id).in_(list(scores))))}
            doc_ids = {c.document_id for c in chunks.values()}
            docs = {
                d.id: d for d in session.exec(select(Document).where(col(Document.id).in_(list(doc_ids))))
            }
        hits = []
        for cid, score in scores.items():
            chunk = chunks.get(cid)
            if chunk is None or chunk.document_id not in docs:  # a vector left behind: the DB decides
                continue
            doc = docs[chunk.document_id]
            hits.append(Hit(chunk, doc, score * self.weight(doc), lex_rank.get(cid), dense_rank.get(cid)))
        hits.sort(key=lambda h: (-h.score, h.chunk.id))
        hits = hits[: max(k, cfg.rerank_depth)]
        if focus and focus != question and lexicon.key_words(focus):
            self.score_relevance(focus, hits, background=question.replace(focus, ""))
        else:
            self.score_relevance(question, hits)
        if cfg.rerank_depth and mode == "hybrid":
            # the fused score, raised by how much of the question the passage holds and by whether it
            # holds the kind of answer asked for (a date, an amount, a time limit ...)
            wants = lexicon.answer_kinds(question)
            for hit in hits:
                cue = 1.0 if wants and any(p.search(hit.chunk.text) for p in wants) else 0.0
                hit.score *= 1 + cfg.relevance_boost * hit.relevance + cfg.cue_boost * cue
            hits.sort(key=lambda h: (-h.score, h.chunk.id))
        return hits[:k]

    def score_relevance(self, question: str, hits: Sequence[Hit], background: str = "") -> None:
        """Set each hit's ``relevance`` (share of the question's content words it contains) and
        ``missing`` (question nouns the knowledge base never mentions, not even as a homophone).
        ``background``: earlier questions of a follow-up; their words count 0.3 and their places are
        not enforced (a follow-up naming a place, "那北京呢？", is judged on that place)."""
        words = list(lexicon.key_words(question))
        own = {w for w, _ in words}
        earlier = [(w, noun) for w, noun in lexicon.key_words(background) if w not in own]
        words += earlier
        half = {w for w, _ in earlier}
        if not words or not hits:
            return
        nouns = [w for w, noun in words if noun]
        with Session(self.kb.engine) as session:
            total = self.kb.lexical.total(session)
            df = self.kb.lexical.doc_freq(session, [w for w, _ in words])
            idf = self.kb.lexical.idf(session, [w for w, _ in words], total)
            unknown = [w for w in nouns if df.get(w, 0) == 0 and not _is_known_alias(w, df)]
            sounds = {w: lexicon.homophone_terms(w) for w in unknown}
            sound_df = self.kb.lexical.doc_freq(session, [t for ts in sounds.values() for t in ts])
        # a noun absent from the KB: a topic it lacks (ASCII: any; Chinese: some bigram sounds unknown)
        missing = tuple(
            w
            for w in unknown
            if w not in half
            and ((w.isascii() and len(w) > 1) or any(sound_df.get(t, 0) == 0 for t in sounds[w]))
        )
        # a word the corpus never uses counts only when it is a noun; anything else is chatter
        weighted = [
            (w, idf[w] * (0.3 if w in half else 1.0)) for w, noun in words if df.get(w, 0) > 0 or noun
        ]
        places = [p for p in PLACES if p in question]
        for hit in hits:
            context = _context(hit)
            hit.relevance = 0.0 if _wrong_place(hit, context, places) else coverage(weighted, context)
            hit.missing = missing


def _is_known_alias(word: str, df: dict[str, int]) -> bool:
    return bool(lexicon.SYNONYMS.get(word))


def _context(hit: Hit) -> str:
    doc = hit.document
    return lexicon.normalize(f"{doc.title} {doc.issuer or ''} {hit.chunk.heading} {hit.chunk.text}")


def _wrong_place(hit: Hit, context: str, places: Sequence[str]) -> bool:
    """The question names a place that neither the passage nor its document's region covers."""
    region = hit.document.region
    return any(p not in context and region not in (p, NATIONWIDE) for p in places)


def coverage(words: Sequence[tuple[str, float]], context: str) -> float:
    """IDF-weighted share of ``words`` found in ``context``: directly, through an abbreviation, or
    through character bigrams and their pinyin (typos)."""
    grams = set(lexicon.bigrams(context))
    pinyin = {lexicon._pinyin(g) for g in grams}
    found = weight = 0.0
    for word, w in words:
        weight += w
        fixed = lexicon.correct(word) if word not in context else None
        names = (word, *([fixed] if fixed else []), *lexicon.SYNONYMS.get(fixed or word, ()))
        if any(name in context for name in names):
            found += w
            continue
        parts = lexicon.bigrams(word)
        if parts:
            matched = sum(1 for g in parts if g in grams or lexicon._pinyin(g) in pinyin)
            found += w * matched / len(parts)
    return found / weight if weight else 1.0
