"""Optional: read a note with an LLM (any OpenAI-compatible chat endpoint) instead of the rules.

Used only when ``SALESBOT_LLM_*`` is configured. The model must answer with one JSON object; it is
validated (unknown product codes dropped, numbers range-checked), and on any failure (timeout,
HTTP error, malformed JSON) the rule-based extractor's answer is used instead, so a note is never
lost to the model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, Field

from skills.signals.extract import Extraction, Finding, ProductInfo, extract

log = logging.getLogger(__name__)

PROMPT = """你是医疗器械销售助手。读销售代表记下的一条客户反馈，只输出一个 JSON 对象，字段：
competitor: 提到的竞品品牌（未点名写"竞品"，没提到写 null）
competitor_quote_count: 提到竞品报价或客户看竞品页面/资料的次数（没有写 0）
price_gap_percent: 竞品比我们便宜的百分比（我们更便宜写负数，没有写 null）
complaint, delivery_delay, meeting_cut_short: true/false
sentiment: "positive" / "negative" / null
interested_products: 客户感兴趣的产品代码列表，只能从下面选：
{products}
反馈：{text}"""


class LLMAnswer(BaseModel):
    competitor: str | None = None
    competitor_quote_count: int = Field(0, ge=0, le=99)
    price_gap_percent: float | None = Field(None, ge=-100, le=100)
    complaint: bool = False
    delivery_delay: bool = False
    meeting_cut_short: bool = False
    sentiment: Literal["positive", "negative"] | None = None
    interested_products: list[str] = []


@dataclass
class LLMExtractor:
    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 20.0
    client: httpx.Client | None = None  # tests pass one with a mock transport

    def __call__(self, text: str, products: list[ProductInfo]) -> Extraction:
        try:
            return self.ask(text, products)
        except Exception as exc:
            log.warning("LLM note extraction failed, using the rules: %s", exc)
            return extract(text, products)

    def ask(self, text: str, products: list[ProductInfo]) -> Extraction:
        catalog = "\n".join(f"{p.code} {p.name}（{'、'.join(p.keywords)}）" for p in products)
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPT.format(products=catalog, text=text)}]}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        client = self.client or httpx.Client(timeout=self.timeout)
        try:
            url = self.base_url.rstrip("/") + "/chat/completions"
            response = client.post(url, json=body, headers=headers)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        finally:
            if self.client is None:
                client.close()
        found = re.search(r"\{.*\}", content, re.DOTALL)
        if not found:
            raise ValueError("no JSON object in the answer")
        answer = LLMAnswer.model_validate(json.loads(found.group(0)))
        return to_extraction(answer, text, products)


def to_extraction(a: LLMAnswer, text: str, products: list[ProductInfo]) -> Extraction:
    out = Extraction(products=[p.code for p in products if p.code in a.interested_products])
    add = out.findings.append
    if a.competitor:
        add(Finding("competitor", "competitor", a.competitor, "LLM"))
        if a.competitor_quote_count:
            add(Finding("competitor_quote", "competitor_views", a.competitor_quote_count, "LLM"))
    if a.price_gap_percent is not None:
        gap = a.price_gap_percent
        add(Finding("price_gap", "competitor_price_gap", int(gap) if gap.is_integer() else gap, "LLM"))
    for kind, flag in (("complaint", a.complaint), ("delivery_delay", a.delivery_delay),
                       ("meeting_cut_short", a.meeting_cut_short)):
        if flag:
            add(Finding(kind, kind, True, "LLM"))
    if a.sentiment:
        add(Finding("sentiment", "sentiment", a.sentiment, "LLM"))
    if out.products:
        add(Finding("interest", "interested_products", list(out.products), "LLM"))
    return out


Extractor = Callable[[str, list[ProductInfo]], Extraction]
