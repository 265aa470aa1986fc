"""The lexical index, inside the database so it commits or rolls back with the chunks.

SQLite: an FTS5 table over space-joined terms (``knowledge.lexicon``), ranked by FTS5's BM25, with
document frequencies from an ``fts5vocab`` table. PostgreSQL: a ``tsvector`` of the same terms with
a GIN index, ranked by the IDF of the matched terms (short passages make BM25's term-frequency part
nearly binary), with document frequencies kept in ``lex_df`` in the same transaction.
Passage terms score fully; terms of the passage's context (title, heading) at ``context_weight``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session


@dataclass(frozen=True)
class LexRow:
    chunk_id: str
    document_id: str
    body: Sequence[str]  # terms of the passage text
    context: Sequence[str]  # terms of title and heading


def make_lexical(engine: Engine, context_weight: float = 0.3) -> LexicalIndex:
    if engine.dialect.name == "sqlite":
        index: LexicalIndex = SqliteLexical(context_weight)
    elif engine.dialect.name == "postgresql":
        index = PostgresLexical(context_weight)
    else:
        raise ValueError(f"no lexical index for {engine.dialect.name}")
    with engine.begin() as conn:
        index.ensure_schema(conn)
    return index


class LexicalIndex:
    # A term in more than this share of passages (and more than COMMON_MIN of them) adds almost
    # nothing to BM25 but makes the query scan its whole posting list: it is left out of the match.
    COMMON_SHARE = 0.05
    COMMON_MIN = 500

    def __init__(self, context_weight: float):
        self.context_weight = context_weight

    def total(self, session: Session) -> int:
        """Passages in the index (from the documents' counts: cheap at any size)."""
        value = session.connection().execute(text("SELECT coalesce(sum(chunk_count), 0) FROM document"))
        return max(1, int(value.scalar() or 0))

    def selective(self, terms: Sequence[str], df: dict[str, int], total: int, keep: int = 3) -> list[str]:
        """``terms`` without the very common ones (the ``keep`` rarest stay in any case)."""
        limit = max(self.COMMON_MIN, self.COMMON_SHARE * total)
        chosen = [t for t in terms if df.get(t, 0) <= limit]
        if len(chosen) < keep:
            chosen = sorted(terms, key=lambda t: df.get(t, 0))[:keep]
        return chosen

    def ensure_schema(self, conn: Connection) -> None:
        raise NotImplementedError

    def add(self, session: Session, rows: Sequence[LexRow]) -> None:
        raise NotImplementedError

    def delete_document(self, session: Session, document_id: str) -> None:
        raise NotImplementedError

    def search(
        self, session: Session, terms: Sequence[str], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        raise NotImplementedError

    def doc_freq(self, session: Session, terms: Sequence[str]) -> dict[str, int]:
        raise NotImplementedError

    def all_ids(self, session: Session) -> set[str]:
        raise NotImplementedError

    def idf(self, session: Session, terms: Sequence[str], total: int) -> dict[str, float]:
        """BM25's IDF of each term over ``total`` passages (unknown terms get the highest IDF)."""
        df = self.doc_freq(session, terms)
        return {t: math.log(1 + (total - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in terms}


def _in_clause(prefix: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    names = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{n}" for n in names), names


class SqliteLexical(LexicalIndex):
    def ensure_schema(self, conn: Connection) -> None:
        conn.execute(
            text(
                "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5("
                "chunk_id UNINDEXED, document_id UNINDEXED, body, context, tokenize = 'ascii')"
            )
        )
        conn.execute(
            text("CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts_vocab USING fts5vocab(chunk_fts, 'row')")
        )

    def add(self, session: Session, rows: Sequence[LexRow]) -> None:
        if rows:
            session.connection().execute(
                text("INSERT INTO chunk_fts (chunk_id, document_id, body, context) VALUES (:c, :d, :b, :x)"),
                [
                    {"c": r.chunk_id, "d": r.document_id, "b": " ".join(r.body), "x": " ".join(r.context)}
                    for r in rows
                ],
            )

    def delete_document(self, session: Session, document_id: str) -> None:
        session.connection().execute(text("DELETE FROM chunk_fts WHERE document_id = :d"), {"d": document_id})

    def search(
        self, session: Session, terms: Sequence[str], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        if not terms or (document_ids is not None and not document_ids):
            return []
        terms = self.selective(terms, self.doc_freq(session, terms), self.total(session))
        match = " OR ".join(f'"{t}"' for t in terms)
        sql = (
            f"SELECT chunk_id, bm25(chunk_fts, 0, 0, 1.0, {self.context_weight}) AS s FROM chunk_fts "
            "WHERE chunk_fts MATCH :q"
        )
        params: dict[str, object] = {"q": match, "k": k}
        if document_ids is not None:
            clause, names = _in_clause("d", document_ids)
            sql += f" AND document_id IN ({clause})"
            params.update(names)
        sql += " ORDER BY s LIMIT :k"
        return [(c, -float(s)) for c, s in session.connection().execute(text(sql), params)]

    def doc_freq(self, session: Session, terms: Sequence[str]) -> dict[str, int]:
        if not terms:
            return {}
        clause, names = _in_clause("t", terms)
        rows = session.connection().execute(
            text(f"SELECT term, doc FROM chunk_fts_vocab WHERE term IN ({clause})"), names
        )
        return {t: int(n) for t, n in rows}

    def all_ids(self, session: Session) -> set[str]:
        return {r[0] for r in session.connection().execute(text("SELECT chunk_id FROM chunk_fts"))}


class PostgresLexical(LexicalIndex):
    def ensure_schema(self, conn: Connection) -> None:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS chunk_lex (chunk_id text PRIMARY KEY, document_id text NOT NULL, "
                "tsv tsvector NOT NULL)"
            )
        )
        conn.execute(text("CREATE INDEX IF NOT EXISTS chunk_lex_tsv ON chunk_lex USING gin (tsv)"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS chunk_lex_doc ON chunk_lex (document_id)"))
        conn.execute(text("CREATE TABLE IF NOT EXISTS lex_df (term text PRIMARY KEY, df integer NOT NULL)"))

    @staticmethod
    def _lexemes(row: LexRow) -> list[str]:
        return sorted(set(row.body) | {f"c_{t}" for t in row.context})

    def add(self, session: Session, rows: Sequence[LexRow]) -> None:
        if not rows:
            return
        conn = session.connection()
        lexemes = [self._lexemes(r) for r in rows]
        conn.execute(
            text("INSERT INTO chunk_lex (chunk_id, document_id, tsv) VALUES (:c, :d, array_to_tsvector(:t))"),
            [{"c": r.chunk_id, "d": r.document_id, "t": lx} for r, lx in zip(rows, lexemes, strict=True)],
        )
        self._bump(conn, Counter(t for lx in lexemes for t in lx), +1)

    def delete_document(self, session: Session, document_id: str) -> None:
        conn = session.connection()
        counts = Counter(
            dict(
                conn.execute(
                    text(
                        "SELECT t, count(*) FROM chunk_lex, unnest(tsvector_to_array(tsv)) AS t "
                        "WHERE document_id = :d GROUP BY t"
                    ),
                    {"d": document_id},
                ).all()
            )
        )
        conn.execute(text("DELETE FROM chunk_lex WHERE document_id = :d"), {"d": document_id})
        self._bump(conn, counts, -1)

    @staticmethod
    def _bump(conn: Connection, counts: Counter[str], sign: int) -> None:
        if not counts:
            return
        terms = sorted(counts)  # a fixed order avoids deadlocks between concurrent ingests
        conn.execute(
            text(
                "INSERT INTO lex_df AS d (term, df) "
                "SELECT * FROM unnest(CAST(:t AS text[]), CAST(:n AS int[])) "
                "ON CONFLICT (term) DO UPDATE SET df = d.df + EXCLUDED.df"
            ),
            {"t": terms, "n": [sign * counts[t] for t in terms]},
        )
        if sign < 0:
            conn.execute(text("DELETE FROM lex_df WHERE df <= 0"))

    def search(
        self, session: Session, terms: Sequence[str], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        if not terms or (document_ids is not None and not document_ids):
            return []
        total = self.total(session)
        df = self.doc_freq(session, terms)
        terms = self.selective(terms, df, total)
        idf = {t: math.log(1 + (total - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in terms}
        params: dict[str, object] = {"k": k}
        parts, matchers = [], []
        for i, term in enumerate(terms):
            params[f"b{i}"], params[f"c{i}"] = f"'{term}'", f"'c_{term}'"
            params[f"w{i}"], params[f"x{i}"] = idf[term], idf[term] * self.context_weight
            parts.append(
                f"(CASE WHEN tsv @@ CAST(:b{i} AS tsquery) THEN :w{i} ELSE 0 END"
                f" + CASE WHEN tsv @@ CAST(:c{i} AS tsquery) THEN :x{i} ELSE 0 END)"
            )
            matchers.append(f"'{term}' | 'c_{term}'")
        params["q"] = " | ".join(matchers)
        sql = f"SELECT chunk_id, ({' + '.join(parts)}) AS s FROM chunk_lex WHERE tsv @@ CAST(:q AS tsquery)"
        if document_ids is not None:
            clause, names = _in_clause("d", document_ids)
            sql += f" AND document_id IN ({clause})"
            params.update(names)
        sql += " ORDER BY s DESC, chunk_id LIMIT :k"
        return [(c, float(s)) for c, s in session.connection().execute(text(sql), params)]

    def doc_freq(self, session: Session, terms: Sequence[str]) -> dict[str, int]:
        if not terms:
            return {}
        rows = session.connection().execute(
            text("SELECT term, df FROM lex_df WHERE term = ANY(CAST(:t AS text[]))"), {"t": list(terms)}
        )
        return {t: int(n) for t, n in rows}

    def all_ids(self, session: Session) -> set[str]:
        return {r[0] for r in session.connection().execute(text("SELECT chunk_id FROM chunk_lex"))}


def unique(terms: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(terms))
