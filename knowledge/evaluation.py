"""Retrieval quality on a question set (``examples/eval/questions.jsonl``).

recall@5: a gold document is among the top 5 passages' documents. passage@5: one of the top 5
passages contains the gold answer text. MRR: of the first passage from a gold document.
Refusal: unanswerable questions the answerer refuses; answered: answerable ones it does not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge.answer import Answerer
from knowledge.lexicon import normalize
from knowledge.retrieval import Retriever


@dataclass
class Question:
    id: str
    question: str
    answerable: bool
    gold_documents: list[str]
    answer: str


def read_questions(path: Path) -> list[Question]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Question(d["id"], d["question"], d["answerable"], d["gold_documents"], d["answer"]))
    return out


def _squash(text: str) -> str:
    return "".join(normalize(text).split())


def evaluate(
    retriever: Retriever,
    answerer: Answerer | None,
    questions: list[Question],
    *,
    mode: str = "hybrid",
    k: int = 5,
) -> dict[str, Any]:
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    recall = passage = rr = 0.0
    misses: list[str] = []
    for q in answerable:
        hits = retriever.search(q.question, k=k, mode=mode)
        sources = [Path(h.document.source).name for h in hits]
        gold = set(q.gold_documents)
        if gold & set(sources):
            recall += 1
            rr += 1 / (next(i for i, s in enumerate(sources) if s in gold) + 1)
        else:
            misses.append(q.id)
        if any(_squash(q.answer) in _squash(h.chunk.text) for h in hits):
            passage += 1
    result: dict[str, Any] = {
        "mode": mode,
        "questions": len(questions),
        "recall@5": recall / max(1, len(answerable)),
        "passage@5": passage / max(1, len(answerable)),
        "mrr": rr / max(1, len(answerable)),
        "misses": misses,
    }
    if answerer is not None:
        original = answerer.retriever
        answerer.retriever = _ModeRetriever(retriever, mode)
        try:
            refused = [q.id for q in unanswerable if answerer.ask(q.question).refused]
            wrongly = [q.id for q in answerable if answerer.ask(q.question).refused]
        finally:
            answerer.retriever = original
        result["refused_unanswerable"] = len(refused) / max(1, len(unanswerable))
        result["answered_answerable"] = 1 - len(wrongly) / max(1, len(answerable))
        result["wrongly_refused"] = wrongly
        result["wrongly_answered"] = [q.id for q in unanswerable if q.id not in refused]
    return result


class _ModeRetriever:
    """The same retriever forced into one mode, for the answerer's refusal rates per mode."""

    def __init__(self, inner: Retriever, mode: str):
        self.inner, self.mode, self.kb = inner, mode, inner.kb

    def search(self, question: str, **kw: Any) -> Any:
        kw["mode"] = self.mode
        return self.inner.search(question, **kw)
