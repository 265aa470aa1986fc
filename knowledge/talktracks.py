"""Talk tracks from an ``Impact``: one per affected rep, plus the managers' digest and care packs.

Template-based and deterministic: every sentence is built from the evidence (cited clauses, the
rep's customers and opportunities, their contacts), so nothing is invented. ``TalkTrack.as_dict``
is what the push queue stores; ``render`` is the chat text (kept under Telegram's 4096 limit).
With an LLM configured, ``write_with_llm`` rewrites the talking points from the same evidence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from knowledge import texts
from knowledge.answer import fence
from knowledge.impact import THEMES, CustomerHit, Impact, OrgSnapshot
from storage.models import Contact, Product

log = logging.getLogger(__name__)
AREA_BY_PREFIX = {"GK": "骨科", "XN": "心血管", "YX": "影像", "SW": "检验"}
MAX_TEXT = 3500


@dataclass
class Citation:
    n: int
    section: str
    clause: str


@dataclass
class ContactPick:
    customer: str
    name: str
    title: str
    influence: int
    score: float
    why: str


@dataclass
class TalkTrack:
    rep_id: str
    document_id: str
    version: int
    title: str
    changes: list[str]  # what changed, each ending with its citation mark [n]
    meaning: list[str]  # what it means for the rep's products and accounts
    points: list[str]  # 3-5 talking points
    contacts: list[ContactPick]
    next_step: str
    citations: list[Citation]
    updated: list[str] = field(default_factory=list)  # a new version: what changed since the last one
    header: str = ""
    written_by: str = "template"  # or "llm" (points and next step rewritten from the same evidence)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [self.header]
        if self.updated:
            lines += [texts.TT_UPDATED.format(version=self.version)] + [f"· {u}" for u in self.updated]
        lines += [texts.TT_CHANGES] + [f"{i}. {c}" for i, c in enumerate(self.changes, 1)]
        lines += [texts.TT_MEANING] + [f"· {m}" for m in self.meaning]
        lines += [texts.TT_POINTS] + [f"{i}. {p}" for i, p in enumerate(self.points, 1)]
        if self.contacts:
            lines += [texts.TT_CONTACTS] + [
                f"{i}. {c.name}（{c.customer}·{c.title}，影响力 {c.influence}/5）：{c.why}"
                for i, c in enumerate(self.contacts, 1)
            ]
        lines += [texts.TT_NEXT, self.next_step, texts.TT_SOURCES]
        lines += [f"[{c.n}] {c.section or '正文'}：{_short(c.clause, 80)}" for c in self.citations]
        text = "\n".join(lines)
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _area_words(product: Product) -> set[str]:
    words = {product.name, *product.keywords}
    area = AREA_BY_PREFIX.get(product.code.split("-")[0])
    return words | ({area} if area else set())


def rank_contacts(
    contacts: Sequence[tuple[str, Contact]],
    themes: Sequence[str],
    products: Sequence[Product],
    limit: int = 4,
) -> list[ContactPick]:
    """Contacts to see first: influence x relevance to the change (themes, product area), with why."""
    area = set().union(*(_area_words(p) for p in products)) if products else set()
    picks = []
    for customer, c in contacts:
        reasons, relevance = [], 1.0
        for rank, theme in enumerate(themes[:3]):
            focus = [f for f in c.focus if f in THEMES[theme][1]]
            if focus:
                relevance += 1.5 if rank == 0 else 0.5
                reasons.append(texts.TT_WHY[theme].format(focus="、".join(focus)))
        clinical = [f for f in c.focus if any(f in w or w in f for w in area)]
        if clinical:
            relevance += 0.5
            reasons.append(texts.TT_WHY_AREA.format(focus="、".join(clinical)))
        if not reasons:
            reasons.append(texts.TT_WHY_INFLUENCE)
        picks.append(
            ContactPick(
                customer, c.name, c.title, c.influence, round(c.influence * relevance, 2), "；".join(reasons)
            )
        )
    picks.sort(key=lambda p: (-p.score, -p.influence, p.customer, p.name))
    return picks[:limit]


def _citations(impact: Impact, products: Sequence[str], limit: int = 4) -> list[Citation]:
    seen: dict[str, Citation] = {}
    evidence = sorted(
        (e for p in impact.products if p.code in products for e in p.evidence if e.chunk_id),
        key=lambda e: -e.score,
    )
    for e in evidence:
        if e.clause not in seen and len(seen) < limit:
            seen[e.clause] = Citation(len(seen) + 1, e.section, e.clause)
    return list(seen.values())


def _money(amount: float) -> str:
    return f"{amount / 10000:.0f} 万元" if amount >= 10000 else f"{amount:.0f} 元"


def build_talk_track(
    impact: Impact, rep_id: str, org: OrgSnapshot, *, updated: Sequence[str] = ()
) -> TalkTrack:
    doc = impact.document
    mine: list[CustomerHit] = impact.customers_of(rep_id)
    codes = sorted({p for c in mine for p in c.products})
    products = [org.products[c] for c in codes if c in org.products]
    names = "、".join(p.name for p in products)
    citations = _citations(impact, codes)
    changes = [f"{_short(c.clause, 90)}（{c.section or '正文'}）[{c.n}]" for c in citations] or [
        texts.TT_NO_CLAUSE.format(title=doc.title)
    ]
    meaning = []
    for hit in mine:
        opps = "；".join(
            texts.TT_OPP.format(
                id=o["id"],
                products="、".join(org.products[p].name for p in o["products"] if p in org.products),
                stage=o["stage"],
                amount=_money(o["amount"]),
                status="" if o["status"] == "open" else texts.TT_INSTALLED,
            )
            for o in hit.opportunities
        )
        meaning.append(f"{hit.name}：{opps}")
    themes = impact.themes or ["clinical"]
    first_cite = f"[{citations[0].n}]" if citations else ""
    points = [texts.TT_POINT_OPEN.format(title=_short(doc.title, 40), cite=first_cite)]
    for theme in themes:
        template = texts.TT_POINT.get(theme)
        if template:
            words = THEMES[theme][0]  # cite the clause that speaks to this theme
            hits = [(sum(c.clause.count(w) for w in words), -c.n, c) for c in citations]
            best = max(hits, key=lambda h: h[:2]) if hits else None
            cited = best[2] if best and best[0] > 0 else None
            points.append(
                template.format(products=names or "我司产品", cite=f"[{cited.n}]" if cited else first_cite)
            )
    if doc.effective_date:
        points.append(texts.TT_POINT_DATE.format(date=doc.effective_date.isoformat()))
    points.append(texts.TT_POINT_NOTE)
    points = points[:5]
    contacts = rank_contacts(
        [(hit.name, c) for hit in mine for c in org.contacts.get(hit.customer_id, [])], themes, products
    )
    if contacts:
        first = contacts[0]
        next_step = texts.TT_NEXT_STEP.format(
            name=first.name, title=first.title, customer=first.customer, products=names or "相关产品"
        )
    else:
        next_step = texts.TT_NEXT_STEP_NO_CONTACT.format(customers="、".join(h.name for h in mine))
    header = texts.TT_HEADER.format(
        title=doc.title,
        issuer=doc.issuer or "—",
        date=doc.effective_date.isoformat() if doc.effective_date else "—",
    )
    return TalkTrack(
        rep_id,
        doc.id,
        doc.version,
        doc.title,
        changes,
        meaning,
        points,
        contacts,
        next_step,
        citations,
        list(updated),
        header,
    )


def what_changed(
    previous: Sequence[Sequence[str]], current: Sequence[Sequence[str]], limit: int = 5
) -> list[str]:
    """Clauses (section, text) of the new version that the previous one did not have, and removed ones."""
    before = {text for _, text in previous}
    after = {text for _, text in current}
    out = [f"{section or '正文'}：{_short(text, 80)}" for section, text in current if text not in before]
    removed = [
        f"{texts.TT_REMOVED}{section or '正文'}：{_short(text, 60)}"
        for section, text in previous
        if text not in after
    ]
    return (out + removed)[:limit]


def manager_digest(impact: Impact, manager_id: str, org: OrgSnapshot) -> str:
    reps = impact.managers.get(manager_id, [])
    lines = [
        texts.TT_DIGEST_HEADER.format(
            title=impact.document.title, version=impact.document.version, count=len(reps)
        )
    ]
    for rep in reps:
        customers = impact.customers_of(rep)
        user = org.users.get(rep)
        lines.append(
            texts.TT_DIGEST_LINE.format(
                rep=user.name if user else rep,
                customers="、".join(c.name for c in customers),
                opps=sum(len(c.opportunities) for c in customers),
            )
        )
    lines.append(texts.TT_DIGEST_FOOT.format(doc=impact.document.id))
    return "\n".join(lines)


@dataclass
class CarePack:
    rep_id: str
    level: str
    title: str
    facts: list[str]
    wording: str
    offers: list[str]
    customers: list[str]

    def render(self) -> str:
        lines = [
            texts.CARE_HEADER.format(level=texts.LEVEL_NAMES.get(self.level, self.level), title=self.title)
        ]
        lines += [texts.CARE_FACTS] + [f"· {f}" for f in self.facts]
        lines += [texts.CARE_WORDING, self.wording]
        lines += [texts.CARE_OFFERS] + [f"· {o}" for o in self.offers]
        if self.customers:
            lines += [texts.CARE_CUSTOMERS, "、".join(self.customers)]
        lines.append(texts.CARE_FOOT)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_with_llm(track: TalkTrack, llm: Any) -> TalkTrack:
    """The LLM rewrites the talking points and the next step from the track's own evidence.

    What changed, the accounts, the contacts and the citations stay as analysed. Marks that cite no
    clause of the track are dropped; an error, a timeout, or an answer without 3-5 cited points
    keeps the template track (logged), so a rep never gets an uncited talk track.
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    clauses = "\n".join(f"[{c.n}] {c.section or '正文'}：{fence(c.clause)}" for c in track.citations)
    contacts = "\n".join(f"{c.name}（{c.customer}·{c.title}）：{c.why}" for c in track.contacts)
    prompt = texts.TT_LLM_USER.format(clauses=clauses, meaning=fence("\n".join(track.meaning)),
                                      contacts=fence(contacts))
    try:
        reply = llm.invoke([SystemMessage(texts.TT_LLM_SYSTEM), HumanMessage(prompt)],
                           config={"run_name": "salesbot-talk-track"})
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
    except Exception as exc:  # timeout, connection refused, HTTP error ...
        log.warning("LLM talk track failed, keeping the template: %s", exc)
        return track
    valid = {c.n for c in track.citations}
    points: list[str] = []
    next_step = track.next_step
    for line in (raw.strip() for raw in content.splitlines()):
        if line.startswith(texts.TT_LLM_NEXT):
            next_step = line.removeprefix(texts.TT_LLM_NEXT).strip() or next_step
            continue
        line = re.sub(r"^(\d+[.、)]|[-·•])\s*", "", line)
        kept = re.sub(r"\[(\d+)\]", lambda m: m.group(0) if int(m.group(1)) in valid else "", line).strip()
        if re.search(r"\[\d+\]", kept):
            points.append(kept)
    if not 3 <= len(points) <= 5:
        log.warning("LLM talk track had %d cited points; keeping the template", len(points))
        return track
    return replace(track, points=points, next_step=next_step, written_by="llm")
