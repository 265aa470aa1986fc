"""Read a rep's note in colloquial Chinese and say which customer tags it supports.

Rule-based and explainable: each finding keeps the words that produced it. Negations are read
first and blanked out ("不太满意" is negative, not "满意"; "不感兴趣" is no interest), common
input-method typos are accepted (竟品, 投述, 到获). The result is a list of findings plus the tag
changes to apply (``competitor_views`` grows by the number of views or quotes mentioned).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skills.signals.tags import Inc

COMPETITOR_BRANDS = (
    "GE", "通用电气", "西门子", "飞利浦", "美敦力", "强生", "史赛克", "捷迈", "雅培", "波科", "波士顿科学",
    "罗氏", "贝克曼", "迈瑞", "联影", "东软", "万东", "微创", "乐普", "威高", "大博", "凯利泰", "安图",
    "新产业", "迈克",
)
_BRAND_RE = re.compile("|".join(
    rf"(?<![A-Za-z]){re.escape(b)}(?![A-Za-z])" if b.isascii() else re.escape(b)
    for b in sorted(COMPETITOR_BRANDS, key=len, reverse=True)), re.IGNORECASE)
_COMPETITOR_RE = re.compile(
    r"竞品|竟品|静品|竞争对手|竟争对手|对手(?!术)|友商|别家|别的厂家?|其他厂家|另一家|人家|他们家|进口品牌")
_QUOTE_RE = re.compile(
    r"报价|报加|报了|报的价|开价|价格|价钱|价|比价|官网|网页|页面|网站|资料|宣传|方案|样本|参数")
_NUM = r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十百]+)"
_TIMES_RE = re.compile(_NUM + r"\s*(?:次|回|遍)")
_SEVERAL_RE = re.compile(r"好几次|好多次|多次|几次|反复")

_GAP_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(低|便宜|少|降|贵|高|差)了?\s*百分之\s*" + _NUM), "pct"),
    (re.compile(r"(低|便宜|少|降|贵|高|差)了?\s*" + _NUM + r"\s*(?:%|个百分点|个点|点)"), "pct"),
    (re.compile(r"(低|便宜|少|贵|高)了?\s*([一二两三四五\d])\s*成"), "tenth"),
    (re.compile(r"(?:差价|价差|差了)\s*" + _NUM + r"\s*(?:%|个百分点|个点|点)"), "pct_plain"),
    (re.compile(r"(?:打|报了?|给了?|开)?\s*([一二三四五六七八九\d]{1,2})\s*折"), "discount"),
)

_COMPLAINT_RE = re.compile(
    r"投诉|投述|抱怨|不满|意见很大|有意见|提意见|吐槽|差评|发火|发脾气|骂|质量问题|(?<![没无])有问题|出问题"
    r"|出了问题|故障|坏了|不好用|返修|退货")
_DELAY_RE = re.compile(
    r"(?:到货|到获|交货|发货|供货|送货)\S{0,3}(?:延迟|延误|延期|晚|慢|推迟|拖)|(?:货|设备|试剂)\S{0,2}(?:还)?没到"
    r"|没到货|还没到|迟迟\S{0,4}(?:到|发|交)|断货|缺货|物流\S{0,2}(?:慢|延误|延迟)|推迟(?:发货|交货|到货)"
    r"|延期交货|拖了\S{0,6}(?:货|发|交)|交期\S{0,3}(?:延|拖|晚)")
_CUT_SHORT_RE = re.compile(
    r"被打断|打断了|会议中断|谈话中断|中断了|提前结束|匆匆|没说几句|没聊几句|没谈完|没讲完|聊了?没几分钟"
    r"|(?:\d+|[一二两三四五])\s*分钟就(?:走|结束|散|被)|被叫走|叫走了|临时有事走|赶人|逐客令|开到一半|说到一半")
_NEGATIVE_RE = re.compile(
    r"不太满意|不满意|不是很满意|不满|不高兴|不开心|生气|发火|失望|冷淡|不耐烦|反感|态度\S?差|脸色不\S?好"
    r"|不太?认可|不接受|不买账|不爽|恼火|有情绪|难沟通|拒绝|抱怨|皱眉|不感兴趣|没兴趣|没意向|没什么兴趣")
_POSITIVE_RE = re.compile(
    r"满意|认可|很好|挺好|不错|高兴|开心|爽快|痛快|积极|支持|好评|点赞|感谢|信任|愉快|顺利|热情|靠谱")
_INTEREST_RE = re.compile(
    r"感兴趣|有兴趣|想了解|了解一下|想看看|要资料|要了\S{0,4}资料|要\S{0,4}资料|想试用|试用|有意向|意向"
    r"|打听|问了|问起|询价|考虑(?:采购|引进|上|买)|想上|要上|想买|想要|演示")


@dataclass(frozen=True)
class ProductInfo:
    code: str
    name: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    # competitor | competitor_quote | price_gap | complaint | delivery_delay | interest | sentiment
    # | meeting_cut_short
    kind: str
    tag: str
    value: Any
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tag": self.tag, "value": self.value, "evidence": self.evidence}


@dataclass
class Extraction:
    findings: list[Finding] = field(default_factory=list)
    products: list[str] = field(default_factory=list)  # every product the note names

    @property
    def changes(self) -> dict[str, Any]:
        """Tag changes for ``apply_tag_changes`` (``Inc`` for counters)."""
        out: dict[str, Any] = {}
        for f in self.findings:
            out[f.tag] = Inc(f.value) if f.kind == "competitor_quote" else f.value
        return out

    @property
    def tags(self) -> dict[str, Any]:
        """The same as plain JSON (counters as the amount added), for storing on the signal."""
        return {f.tag: f.value for f in self.findings}


def normalize(text: str) -> str:
    """Full-width to half-width (％ -> %, ３ -> 3), no spaces between Chinese characters."""
    return unicodedata.normalize("NFKC", text).strip()


def cn_number(s: str) -> float | None:
    """'15' -> 15, '十五' -> 15, '二十' -> 20, '两' -> 2, '一百' -> 100; None if unreadable."""
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return float(s)
    digits = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
    total, current = 0, 0
    for ch in s:
        if ch in digits:
            current = digits[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return float(total + current)


def extract(text: str, products: Iterable[ProductInfo] = ()) -> Extraction:
    """All findings in one note."""
    t = normalize(text)
    out = Extraction()

    brand = _BRAND_RE.search(t)
    generic = _COMPETITOR_RE.search(t)
    competitor = brand or generic
    if competitor:
        name = brand.group(0) if brand else "竞品"
        out.findings.append(Finding("competitor", "competitor", name, competitor.group(0)))
        quote = _QUOTE_RE.search(t)
        if quote:
            times = _TIMES_RE.search(t)
            n = cn_number(times.group(1)) if times else None
            if n is None and _SEVERAL_RE.search(t):
                n = 2
            count = int(n) if n and 0 < n < 100 else 1
            out.findings.append(Finding("competitor_quote", "competitor_views", count,
                                        times.group(0) if times else quote.group(0)))

    gap = _price_gap(t)
    if gap is not None and (competitor or "价" in t):
        out.findings.append(Finding("price_gap", "competitor_price_gap", gap[0], gap[1]))

    complaint = _COMPLAINT_RE.search(t)
    if complaint:
        out.findings.append(Finding("complaint", "complaint", True, complaint.group(0)))
    delay = _DELAY_RE.search(t)
    if delay:
        out.findings.append(Finding("delivery_delay", "delivery_delay", True, delay.group(0)))
    cut = _CUT_SHORT_RE.search(t)
    if cut:
        out.findings.append(Finding("meeting_cut_short", "meeting_cut_short", True, cut.group(0)))

    negatives = [m.group(0) for m in _NEGATIVE_RE.finditer(t)]
    rest = _NEGATIVE_RE.sub("　", t)  # blank out negations before looking for positive words and interest
    positives = [m.group(0) for m in _POSITIVE_RE.finditer(rest)]
    neg_score = len(negatives) + (1 if complaint and complaint.group(0) not in negatives else 0)
    if neg_score > len(positives):
        evidence = "、".join(negatives) if negatives else complaint.group(0) if complaint else ""
        out.findings.append(Finding("sentiment", "sentiment", "negative", evidence))
    elif positives and len(positives) > neg_score:
        out.findings.append(Finding("sentiment", "sentiment", "positive", "、".join(positives)))

    out.products = _products(rest, products)
    interest = _INTEREST_RE.search(rest)
    if interest and out.products:
        out.findings.append(Finding("interest", "interested_products", list(out.products), interest.group(0)))
    return out


def _price_gap(t: str) -> tuple[float, str] | None:
    for pattern, kind in _GAP_PATTERNS:
        m = pattern.search(t)
        if not m:
            continue
        if kind == "discount":
            digits = m.group(1)
            n = cn_number(digits) if not digits.isdigit() else float(digits)
            if n is None or n <= 0:
                continue
            off = 100 - (n * 10 if n < 10 else n)
            return _round(off), m.group(0)
        if kind == "pct_plain":
            n = cn_number(m.group(1))
            return (_round(n), m.group(0)) if n is not None else None
        n = cn_number(m.group(2))
        if n is None:
            continue
        value = n * 10 if kind == "tenth" else n
        return _round(value * _direction(t, m.group(1), m.start())), m.group(0)
    return None


def _direction(t: str, word: str, at: int) -> int:
    """+1 when the competitor is cheaper, -1 when we are cheaper."""
    cheaper = word in ("低", "便宜", "少", "降", "差")
    before = t[:at]
    clause = re.split(r"[,，。;；!！?？]", before)[-1]
    ours = "我们" in clause or "咱们" in clause or "我司" in clause
    if re.search(r"比(?:我们|咱们|我司)", clause):
        ours = False  # "竞品比我们低" : the competitor is the subject
    return (1 if cheaper else -1) * (-1 if ours else 1)


def _round(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 1)


def _products(t: str, products: Iterable[ProductInfo]) -> list[str]:
    """Codes of the products named by name, code or keyword (longest term first; a keyword several
    products share names all of them)."""
    terms: dict[str, list[str]] = {}
    for p in products:
        for term in (p.name, p.code, *p.keywords):
            codes = terms.setdefault(term.casefold(), [])
            if p.code not in codes:
                codes.append(p.code)
    found: list[str] = []
    folded = t.casefold()
    for needle in sorted(terms, key=len, reverse=True):
        if len(needle) < 2 or needle not in folded:
            continue
        if needle.isascii() and not re.search(rf"(?<![a-z]){re.escape(needle)}(?![a-z])", folded):
            continue
        found.extend(c for c in terms[needle] if c not in found)
        folded = folded.replace(needle, "　")
    return found
