"""Answers with numbered citations, refusal when nothing is relevant enough, optional LLM writing.

Extractive by default: the passages that answer, each followed by its citation number, then the
citations ``[1] 《标题》二、执行时间（一），发布机构，2026-03-01``. With an LLM configured (any
OpenAI-compatible endpoint through langchain-openai), the model writes the answer from the retrieved
passages only; citation numbers that do not exist are dropped, and any error, timeout or answer
without a valid citation falls back to the extractive answer. Passage text is data, never
instructions: it is fenced and the system prompt says so.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from knowledge import lexicon, texts
from knowledge.retrieval import Filters, Hit, Retriever
from storage.models import Document

log = logging.getLogger(__name__)
_SENTENCE = re.compile(r"(?<=[。！？；!?;])")
_FOLLOW_UP = re.compile(r"^(那|那么|还有|另外|这个|这些|它|他们|其中|如果是|要是)|呢[？?]?$")


@dataclass
class Citation:
    n: int
    document_id: str
    title: str
    source: str
    section: str
    text: str
    score: float
    issuer: str = ""
    date: str = ""

    @property
    def label(self) -> str:
        parts = [f"《{self.title}》{self.section}"]
        parts += [p for p in (self.issuer, self.date) if p]
        return f"[{self.n}] " + "，".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "title": self.title,
            "source": self.source,
            "section": self.section,
            "text": self.text,
            "score": round(self.score, 4),
        }


@dataclass
class Answer:
    question: str
    text: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    by_llm: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "citations": [c.as_dict() for c in self.citations],
        }


@dataclass
class AnswerConfig:
    min_relevance: float = 0.55
    max_citations: int = 3
    keep_ratio: float = 0.6  # further passages are cited when their score is this close to the best
    history_turns: int = 3


class Answerer:
    def __init__(
        self,
        retriever: Retriever,
        config: AnswerConfig | None = None,
        llm: Any | None = None,
        llm_timeout: float = 20.0,
    ):
        self.retriever = retriever
        self.config = config or AnswerConfig()
        self.llm = llm
        self.llm_timeout = llm_timeout
        self._history: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=self.config.history_turns))

    # conversation ------------------------------------------------------------------------
    def contextual_query(self, question: str, user: str | None) -> str:
        """A follow-up ("那北京呢？") is searched together with the user's previous questions."""
        if not user or not self._history[user]:
            return question
        if _FOLLOW_UP.search(question.strip()) or len(lexicon.key_words(question)) <= 1:
            return f"{self._history[user][-1]} {question}"
        return question

    def remember(self, user: str | None, query: str) -> None:
        if user:
            self._history[user].append(query)

    # answering ---------------------------------------------------------------------------
    def ask(self, question: str, *, user: str | None = None, filters: Filters | None = None) -> Answer:
        question = question.strip()
        if not question:
            return Answer(question, texts.EMPTY_QUESTION, refused=True)
        query = self.contextual_query(question, user)
        hits = self.retriever.search(query, k=5, filters=filters, focus=question)
        self.remember(user, query)
        chosen = self.select(hits, question)
        if not chosen:
            return Answer(question, self.refusal(), refused=True)
        citations = [_citation(n, hit) for n, hit in enumerate(chosen, start=1)]
        if self.llm is not None:
            written = self._llm_answer(question, citations)
            if written is not None:
                return written
        return Answer(question, self.extractive(query, chosen, citations), refused=False, citations=citations)

    def select(self, hits: Sequence[Hit], question: str = "") -> list[Hit]:
        """The passages to cite: relevant enough, close to the best; none -> refuse. When the
        question asks for a date, an amount or a time limit, passages that hold one come first."""
        cfg = self.config
        relevant = [h for h in hits if h.relevance >= cfg.min_relevance and not h.missing]
        if not relevant:
            return []
        best = relevant[0].score
        chosen = [h for h in relevant if h.score >= best * cfg.keep_ratio][: cfg.max_citations]
        wants = lexicon.answer_kinds(question)
        shaped = [h for h in chosen if any(p.search(h.chunk.text) for p in wants)]
        return shaped or chosen

    def extractive(self, query: str, hits: Sequence[Hit], citations: Sequence[Citation]) -> str:
        lines = [texts.ANSWER_HEADER]
        for hit, cite in zip(hits, citations, strict=True):
            lines.append(f"{best_sentences(query, hit.chunk.text)}[{cite.n}]")
        lines += ["", texts.SOURCES_HEADER, *(c.label for c in citations)]
        return "\n".join(lines)

    def refusal(self) -> str:
        with Session(self.retriever.kb.engine) as session:
            docs = list(session.exec(select(Document).order_by(Document.effective_date.desc())))  # type: ignore[union-attr]
        if not docs:
            return f"{texts.REFUSAL}\n{texts.REFUSAL_EMPTY}"
        by_library: dict[str, list[Document]] = defaultdict(list)
        for doc in docs:
            by_library[doc.library].append(doc)
        covers = "；".join(
            texts.COVER_ITEM.format(
                library=texts.LIBRARY_NAMES.get(lib, lib), count=len(items), example=items[0].title
            )
            for lib, items in sorted(by_library.items(), key=lambda kv: -len(kv[1]))
        )
        return f"{texts.REFUSAL}\n{texts.REFUSAL_COVERS.format(covers=covers)}"

    # LLM ---------------------------------------------------------------------------------
    def _llm_answer(self, question: str, citations: list[Citation]) -> Answer | None:
        from langchain_core.messages import HumanMessage, SystemMessage

        passages = "\n".join(f"[{c.n}] 《{c.title}》{c.section}：{fence(c.text)}" for c in citations)
        messages = [
            SystemMessage(texts.LLM_SYSTEM),
            HumanMessage(texts.LLM_USER.format(passages=passages, question=fence(question))),
        ]
        try:
            reply = self.llm.invoke(messages, config={"run_name": "salesbot-answer"})
            content = reply.content if isinstance(reply.content, str) else str(reply.content)
        except Exception as exc:  # timeout, connection refused, HTTP error, bad payload ...
            log.warning("LLM failed, answering extractively: %s", exc)
            return None
        valid = {c.n for c in citations}
        used: list[int] = []

        def keep(found: re.Match[str]) -> str:
            n = int(found.group(1))
            if n in valid:
                used.append(n)
                return found.group(0)
            return ""

        content = re.sub(r"\[(\d+)\]", keep, content).strip()
        if not used or not content:
            log.warning("LLM answer cites no retrieved passage; answering extractively")
            return None
        cited = [c for c in citations if c.n in set(used)]
        text = "\n".join([content, "", texts.SOURCES_HEADER, *(c.label for c in cited)])
        return Answer(question, text, refused=False, citations=cited, by_llm=True)


def make_llm(base_url: str, model: str, api_key: str | None, timeout: float) -> Any:
    """A langchain chat model for any OpenAI-compatible endpoint; no retries (we fall back instead)."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=api_key or "not-needed",
        timeout=timeout,
        max_retries=0,
        temperature=0,
    )


def best_sentences(query: str, passage: str, max_chars: int = 160) -> str:
    """The passage if short, else its sentences that share the most query terms (in order)."""
    if len(passage) <= max_chars:
        return passage
    sentences = [s for s in _SENTENCE.split(passage) if s.strip()]
    terms = set(lexicon.query_terms(query))
    scored = sorted(range(len(sentences)), key=lambda i: -len(terms & set(lexicon.terms(sentences[i]))))
    keep: list[int] = []
    size = 0
    for i in scored:
        if keep and size + len(sentences[i]) > max_chars:
            break
        keep.append(i)
        size += len(sentences[i])
    return "".join(sentences[i] for i in sorted(keep))


def _citation(n: int, hit: Hit) -> Citation:
    doc = hit.document
    return Citation(
        n=n,
        document_id=doc.id,
        title=doc.title,
        source=doc.source,
        section=hit.chunk.section,
        text=hit.chunk.text,
        score=hit.score,
        issuer=doc.issuer or "",
        date=doc.effective_date.isoformat() if doc.effective_date else "",
    )


def fence(text: str) -> str:
    """Keep document or user text from opening or closing our data tags in an LLM prompt."""
    return text.replace("<", "‹").replace(">", "›")
