"""Policy impact: which products, regions, customers and reps a document concerns, with evidence.

Pure functions over plain data (``OrgSnapshot`` and the document's passages), so every decision
is testable without a database:

1. Products: for each passage, the product codes, names and keywords found in it, plus the share of
   the product description's terms the passage shares (a lexical stand-in for a semantic match);
   each hit keeps the clause (the sentence it sits in), its section (第八条) and a score. A
   product counts when its best score reaches ``ImpactConfig.min_product_score``. Products the
   uploader named in the metadata count with ``metadata_score``.
2. Regions: the document's region (全国 = every region), else place names in its title and issuer,
   else national markers (国家医疗保障局, 各省、自治区、直辖市 ...) or place names in the text.
3. Customers in those regions with open opportunities on those products (``won`` ones count as the
   installed base when ``include_won``); their owners are the reps, the reps' managers get a digest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session, select

from knowledge import lexicon
from storage.models import Contact, Customer, Document, Opportunity, Product, User

ALL_REGIONS = "全国"
# place names that point to a sales region; a region name itself always counts
REGION_PLACES: dict[str, tuple[str, ...]] = {
    "北京": ("北京", "京医保", "京卫"),
    "江苏": (
        "江苏",
        "苏医保",
        "南京",
        "苏州",
        "无锡",
        "常州",
        "徐州",
        "南通",
        "扬州",
        "镇江",
        "泰州",
        "盐城",
        "淮安",
        "连云港",
        "宿迁",
        "苏北",
        "苏南",
    ),
}
NATIONAL_MARKERS = (
    "全国",
    "国家医疗保障局",
    "国家医保局",
    "国家组织",
    "各省、自治区、直辖市",
    "国家卫生健康委",
    "国家药品监督管理局",
    "国家药监局",
    "联采办",
)
_SENTENCE = re.compile(r"(?<=[。；;！？!?\n])")
_ASCII = re.compile(r"^[0-9A-Za-z.+-]+$")


@dataclass
class ImpactConfig:
    min_product_score: float = 0.5
    metadata_score: float = 0.6  # products named in the document's metadata
    description_weight: float = 0.4  # weight of the description-term overlap
    include_won: bool = True  # customers with a won opportunity (installed base) count too
    max_evidence: int = 3  # clauses kept per product


# --- org snapshot -------------------------------------------------------------------------------
@dataclass
class OrgSnapshot:
    users: dict[str, User]
    products: dict[str, Product]
    customers: dict[str, Customer]
    contacts: dict[str, list[Contact]]
    opportunities: list[Opportunity]

    @property
    def regions(self) -> list[str]:
        found = {c.region for c in self.customers.values()} | {
            u.region for u in self.users.values() if u.region
        }
        return sorted(found)


def load_org(session: Session) -> OrgSnapshot:
    contacts: dict[str, list[Contact]] = {}
    for contact in session.exec(select(Contact)):
        contacts.setdefault(contact.customer_id, []).append(contact)
    return OrgSnapshot(
        users={u.id: u for u in session.exec(select(User))},
        products={p.code: p for p in session.exec(select(Product))},
        customers={c.id: c for c in session.exec(select(Customer))},
        contacts=contacts,
        opportunities=list(session.exec(select(Opportunity).order_by(Opportunity.id))),
    )


# --- results ------------------------------------------------------------------------------------
@dataclass
class Passage:
    """What impact analysis needs of a chunk."""

    id: str
    text: str
    section: str = ""


@dataclass
class Evidence:
    product: str
    score: float
    clause: str
    section: str = ""
    chunk_id: str = ""
    matched: list[str] = field(default_factory=list)  # codes / names / keywords / description terms


@dataclass
class ProductHit:
    code: str
    name: str
    score: float
    evidence: list[Evidence]


@dataclass
class CustomerHit:
    customer_id: str
    name: str
    region: str
    owner_id: str
    opportunities: list[dict[str, Any]]  # {"id", "products", "stage", "amount", "status"}
    products: list[str]


@dataclass
class DocInfo:
    id: str
    version: int
    title: str
    library: str = "policy"
    issuer: str | None = None
    region: str | None = None
    effective_date: date | None = None
    products: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, doc: Document) -> DocInfo:
        return cls(
            doc.id,
            doc.version,
            doc.title,
            doc.library,
            doc.issuer,
            doc.region,
            doc.effective_date,
            list(doc.product_codes or []),
        )


@dataclass
class Impact:
    document: DocInfo
    products: list[ProductHit]
    regions: list[str]
    region_evidence: str
    customers: list[CustomerHit]
    reps: dict[str, list[str]]  # rep id -> customer ids
    managers: dict[str, list[str]]  # manager id -> rep ids
    themes: list[str] = field(default_factory=list)

    def customers_of(self, rep_id: str) -> list[CustomerHit]:
        index = self.__dict__.get("_by_id")
        if index is None:
            index = self.__dict__["_by_id"] = {c.customer_id: c for c in self.customers}
        return [index[c] for c in self.reps.get(rep_id, [])]

    @property
    def product_codes(self) -> list[str]:
        return [p.code for p in self.products]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["document"]["effective_date"] = (
            self.document.effective_date.isoformat() if self.document.effective_date else None
        )
        return out


# --- analysis -----------------------------------------------------------------------------------
def clause_of(text: str, needle: str) -> str:
    """The sentence of ``text`` holding ``needle`` (case-insensitive), trimmed."""
    low = needle.casefold()
    for sentence in _SENTENCE.split(text):
        if low in sentence.casefold():
            return sentence.strip()
    return text.strip()[:160]


def _contains(text: str, folded: str, word: str) -> bool:
    if not word:
        return False
    if _ASCII.match(word):  # CT, PCI, IVD: not inside another Latin word
        return re.search(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", text, re.IGNORECASE) is not None
    return word.casefold() in folded


def _description_terms(product: Product) -> set[str]:
    terms = set(lexicon.terms(product.description or "")) | set(lexicon.terms(product.name))
    return {t for t in terms if len(t) >= 2 and not t.isdigit() and not t.startswith("py")}


def match_products(
    passages: Sequence[Passage],
    products: Iterable[Product],
    config: ImpactConfig,
    metadata: Sequence[str] = (),
) -> list[ProductHit]:
    hits: list[ProductHit] = []
    for product in products:
        evidence: list[Evidence] = []
        desc = _description_terms(product)
        for passage in passages:
            folded = passage.text.casefold()
            matched: list[str] = []
            score = 0.0
            anchor = ""
            if _contains(passage.text, folded, product.code):
                score, anchor = 1.0, product.code
                matched.append(product.code)
            if _contains(passage.text, folded, product.name):
                score, anchor = max(score, 0.9), anchor or product.name
                matched.append(product.name)
            keywords = [k for k in product.keywords if _contains(passage.text, folded, k)]
            if keywords:
                kw_score = min(0.95, 0.55 + 0.15 * (len(keywords) - 1))
                if kw_score > score:
                    score, anchor = kw_score, keywords[0]
                matched += keywords
            if desc:
                shared = desc & set(lexicon.terms(passage.text))
                if shared:
                    bonus = config.description_weight * len(shared) / len(desc)
                    score = min(1.0, score + bonus) if score else bonus
                    anchor = anchor or sorted(shared)[0]
                    matched += sorted(shared - set(matched))[:5]
            if score >= 0.2:
                evidence.append(
                    Evidence(
                        product.code,
                        round(score, 3),
                        clause_of(passage.text, anchor),
                        passage.section,
                        passage.id,
                        matched,
                    )
                )
        evidence.sort(key=lambda e: (-e.score, e.chunk_id))
        best = evidence[0].score if evidence else 0.0
        if product.code in metadata and best < config.metadata_score:
            best = config.metadata_score
            evidence.append(
                Evidence(product.code, config.metadata_score, "（上传时标注的产品）", "", "", ["metadata"])
            )
        if best >= config.min_product_score:
            hits.append(
                ProductHit(product.code, product.name, round(best, 3), evidence[: config.max_evidence])
            )
    hits.sort(key=lambda h: (-h.score, h.code))
    return hits


def _places(text: str, known: Sequence[str]) -> list[str]:
    found = []
    for region in known:
        places = (*REGION_PLACES.get(region, ()), region)
        if any(p in text for p in places):
            found.append(region)
    return found


def match_regions(doc: DocInfo, passages: Sequence[Passage], known: Sequence[str]) -> tuple[list[str], str]:
    """(regions, why). Every known region when the document is national."""
    if doc.region:
        if doc.region == ALL_REGIONS:
            return list(known), "文档地区：全国"
        regions = [r for r in known if r == doc.region] or _places(doc.region, known)
        return regions, f"文档地区：{doc.region}"
    head = f"{doc.title} {doc.issuer or ''}"
    regions = _places(head, known)
    if regions:
        return regions, f"发文机关/标题：{'、'.join(regions)}"
    if any(m in head for m in NATIONAL_MARKERS):
        return list(known), "发文机关/标题：全国性文件"
    body = "\n".join(p.text for p in passages)
    marker = next((m for m in NATIONAL_MARKERS if m in body), None)
    if marker:
        return list(known), f"正文提到「{marker}」：全国性文件"
    regions = _places(body, known)
    return regions, (f"正文地名：{'、'.join(regions)}" if regions else "未识别到地区")


THEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # theme -> (words in the clauses, contact focus it speaks to)
    "cost": (
        (
            "DRG",
            "DIP",
            "医保",
            "支付",
            "结算",
            "价格",
            "集采",
            "带量采购",
            "成本",
            "费用",
            "预算",
            "打包",
            "测算",
            "中选",
        ),
        ("成本", "医保", "DRG", "预算", "采购"),
    ),
    "equipment": (
        ("设备", "配置", "维保", "装机", "大型医用设备", "配送", "供应"),
        ("设备", "维保", "国产替代", "采购"),
    ),
    "clinical": (
        ("临床", "手术", "病例", "病组", "不良事件", "疗效", "随访", "权重", "诊疗", "使用"),
        ("临床",),
    ),
    "compliance": (("合规", "检查", "违规", "追溯", "舆情", "质量"), ("质量", "合规", "耗材管理")),
}


def detect_themes(texts: Iterable[str]) -> list[str]:
    joined = "\n".join(texts)
    counts = {theme: sum(joined.count(w) for w in words) for theme, (words, _) in THEMES.items()}
    return [t for t, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n > 0]


def affected(
    org: OrgSnapshot, regions: Sequence[str], products: Sequence[str], config: ImpactConfig
) -> list[CustomerHit]:
    wanted, region_set = set(products), set(regions)
    by_customer: dict[str, list[Opportunity]] = {}
    for opp in org.opportunities:
        customer = org.customers.get(opp.customer_id)
        if customer is None or customer.region not in region_set or not wanted & set(opp.products):
            continue
        if opp.status == "open" or (config.include_won and opp.status == "won"):
            by_customer.setdefault(opp.customer_id, []).append(opp)
    out = []
    for cid, opps in sorted(by_customer.items()):
        customer = org.customers[cid]
        owner = org.users.get(customer.owner_id)
        if owner is None or not owner.active:
            continue
        opps.sort(key=lambda o: (o.status != "open", o.id))
        out.append(
            CustomerHit(
                cid,
                customer.name,
                customer.region,
                customer.owner_id,
                [
                    {
                        "id": o.id,
                        "products": [p for p in o.products if p in wanted],
                        "stage": o.stage,
                        "amount": float(o.amount),
                        "status": o.status,
                    }
                    for o in opps
                ],
                sorted({p for o in opps for p in o.products if p in wanted}),
            )
        )
    return out


def analyse(
    doc: DocInfo, passages: Sequence[Passage], org: OrgSnapshot, config: ImpactConfig | None = None
) -> Impact:
    config = config or ImpactConfig()
    products = match_products(passages, org.products.values(), config, doc.products)
    regions, why = match_regions(doc, passages, org.regions)
    customers = affected(org, regions, [p.code for p in products], config) if products else []
    reps: dict[str, list[str]] = {}
    for hit in customers:
        reps.setdefault(hit.owner_id, []).append(hit.customer_id)
    managers: dict[str, list[str]] = {}
    for rep in sorted(reps):
        manager = org.users[rep].manager_id
        if manager and manager in org.users:
            managers.setdefault(manager, []).append(rep)
    themes = detect_themes([doc.title] + [e.clause for p in products for e in p.evidence])
    return Impact(doc, products, regions, why, customers, dict(sorted(reps.items())), managers, themes)


def passages_of(session: Session, document_id: str) -> list[Passage]:
    from storage.models import Chunk

    rows = session.exec(select(Chunk).where(Chunk.document_id == document_id).order_by(Chunk.ordinal))
    return [Passage(c.id, c.text, c.section) for c in rows]
