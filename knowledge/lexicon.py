"""Chinese text to search terms: jieba words (with a medical-sales dictionary), character bigrams
and their toneless pinyin (reps type with a pinyin IME, so most typos are homophones: 集彩 -> 集采,
挂王 -> 挂网), plus abbreviation expansion on the query side (集采 -> 集中带量采购).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache


def _split(words: str) -> list[str]:
    return words.split()


# Words jieba must keep whole; abbreviations reps use. Frequencies make them win over splits.
DOMAIN_WORDS = _split("""
集采 约定量 带量采购 集中带量采购 集中采购 省际联盟 联盟采购 中选 中选结果 中选价格
接续采购 约定采购量 意向采购量 医保 医保局 医疗保障局 医保基金 医保支付 支付标准 挂网
阳光挂网 挂网价 挂网采购 撤网 耗材 医用耗材 高值耗材 低值耗材 DRG DIP IVD CT
PET 彩超 超声 飞检 飞行检查 骗保 欺诈骗保 跟台 回款 配置证 配置许可证 配置许可
大型医用设备 不良事件 哨点医院 召回 一级召回 注册证 备案 卫健委 卫生健康委 药监局
国家医保局 联采办 接骨板 锁定接骨板 椎弓根螺钉 髋关节 膝关节 冠脉支架 药物洗脱支架 球囊
球囊扩张导管 化学发光 发光试剂 校准品 质控品 特例单议 除外支付 病组 分组方案 权重 结余留用
国产替代 全生命周期 球管 维保 全保 讲课费 学术会议 商业贿赂 回扣 合规 医药代表 舆情 控标
招标参数 质疑 中药饮片 毒性饮片 临床使用 品规 点评
""")

# Company-internal topics a policy knowledge base does not cover; tagged as nouns so that a question
# about them is refused unless some document does mention them.
INTERNAL_TOPICS = _split("""
年会 差旅 报销 指标 销售指标 提成 奖金 工资 考勤 请假 底价 内部价 团建 年假 新一代
""")

# Query-side expansion: what a rep types -> how documents say it.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "集采": ("集中带量采购", "带量采购"),
    "带量采购": ("集中带量采购",),
    "医保": ("医疗保障", "医保基金"),
    "飞检": ("飞行检查",),
    "骗保": ("欺诈骗保", "骗取医保基金"),
    "发光": ("化学发光",),
    "ivd": ("体外诊断", "试剂"),
    "drg": ("疾病诊断相关分组",),
    "dip": ("病种分值",),
    "钢板": ("接骨板",),
    "配置证": ("配置许可证", "配置许可"),
    "彩超": ("超声",),
    "回款": ("结算", "货款"),
    "讲课费": ("劳务费", "讲课"),
    "吃饭": ("餐饮", "用餐"),
    "礼品": ("礼品", "礼物"),
    "跟台": ("跟台人员",),
    "单议": ("特例单议",),
    "新规": ("通知", "规定"),
    "报": ("报告", "申报"),
    "装机": ("安装", "装机"),
    "控标": ("量身定制", "倾向性"),
    "高值耗材": ("高值医用耗材",),
    "约定量": ("约定采购量",),
    "发光试剂": ("化学发光", "试剂"),
    "毒性饮片": ("毒性中药饮片",),
    "糖尿病人": ("糖尿病",),
    "除外支付": ("除外drg支付", "除外"),
    "外省": ("其他省", "外省"),
    "生效": ("施行", "执行"),
    "手术台": ("手术", "术中"),
    "记者": ("媒体", "采访"),
    "新闻": ("媒体", "报道", "舆情"),
    "底价": ("底价",),
    "卫健委": ("卫生健康委",),
    "医保局": ("医疗保障局",),
    "药监局": ("药品监督管理局",),
}

# Kinds of answer (a date, an amount, a time limit, a ratio): the question's cue, the answer's shape.
ANSWER_KINDS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (
        re.compile("啥时候|什么时候|何时|哪天|几号|生效|施行|落地"),
        re.compile(r"\d{4}年\d{1,2}月(\d{1,2}日)?(起|开始)"),
    ),
    (re.compile("多少钱|价格|价|多少一|费用|预算|几块"), re.compile(r"\d+(\.\d+)?(万|亿)?元")),
    (
        re.compile("多久|几天|时限|期限|多长时间|几年"),
        re.compile(r"\d+(个)?(工作日|日|天|小时|个月|年)(内|以内)?"),
    ),
    (re.compile("几倍|比例|多少个点|降了多少|百分之|发生率|率"), re.compile(r"\d+(\.\d+)?%|\d+倍")),
)


def answer_kinds(question: str) -> list[re.Pattern[str]]:
    """Shapes the answer to ``question`` probably has (empty when it does not say)."""
    return [shape for cue, shape in ANSWER_KINDS if cue.search(question)]


# What kind of answer a question wants -> words that such answers contain.
ANSWER_CUES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (
        re.compile("啥时候|什么时候|何时|哪天|几号|几月|生效|施行|执行|落地"),
        ("起执行", "起施行", "日起", "执行", "施行"),
    ),
    (re.compile("多少钱|价格|多少一|几块|费用|预算"), ("元", "万元", "价格")),
    (re.compile("多久|几天|时限|期限|多长时间"), ("日内", "小时", "个月", "以内")),
    (re.compile("几倍|比例|多少个点|降了多少|百分之"), ("倍", "%")),
)

STOPWORDS = frozenset(
    _split("""
的 了 吗 呢 吧 啊 呀 么 嘛 和 与 及 或 是 在 有 没 没有 能 能不能 可以 会 要
得 地 就 都 也 还 又 这 那 这个 那个 哪 哪个 哪些 什么 啥 啥时候 咋 咋样 怎么
怎么样 怎样 多少 多久 几 几个 现在 一下 一般 大概 我 我们 你 你们 他 她 它 他们 给
对 把 被 让 从 到 按 跟 向 吗 不 一 上 下 个 些 之 其 该 等 后 时 中 里 内
号 问 说 想 算 用 多少钱 内要 能报 要存 能上 还要 几次 几家 几天 几台 几号 几倍
一年 一天 一块 有没有 开始 时候 最多 以后 拿到 这边 跟着 这块 那事 后来 咋办 咋回
怎么破 不行 事 那单 单 能比 另外 查到 找 帮 写 提 买 进 做 开 走 请
""")
)

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
_RUN = re.compile(rf"[{_CJK}]+|[0-9a-z]+(?:\.[0-9]+)?")
_WORD = re.compile(rf"^[{_CJK}0-9a-z]+$")
_lock = threading.RLock()  # key_words holds it while _posseg() builds the tokenizer


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    with _lock:
        tokenizer.initialize()
        for word in DOMAIN_WORDS:
            tokenizer.add_word(word.lower(), freq=200000)
        for word in INTERNAL_TOPICS:
            tokenizer.add_word(word, freq=200000, tag="n")
    return tokenizer


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


@lru_cache(maxsize=65536)
def _pinyin(bigram: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(bigram, style=Style.NORMAL, errors="ignore"))


def words(text: str) -> list[str]:
    """jieba search-mode words, normalised, without stopwords and punctuation."""
    out = []
    for word in _jieba().cut_for_search(normalize(text)):
        word = word.strip()
        if word and word not in STOPWORDS and _WORD.match(word):
            out.append(word)
    return out


def bigrams(text: str) -> list[str]:
    out: list[str] = []
    for run in re.findall(rf"[{_CJK}]+", normalize(text)):
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def terms(text: str) -> list[str]:
    """Everything indexed for a passage: words, character bigrams and pinyin of the bigrams."""
    grams = bigrams(text)
    return words(text) + grams + ["py" + _pinyin(g) for g in grams]


def query_terms(text: str) -> list[str]:
    """Unique terms of a question, abbreviations expanded; stopword-only bigrams dropped."""
    base = words(text)
    expanded = list(base)
    for word in base:
        fixed = correct(word)
        if fixed:
            expanded.append(fixed)
        for alias in SYNONYMS.get(fixed or word, ()):
            expanded.extend(words(alias))
    for pattern, cues in ANSWER_CUES:
        if pattern.search(text):
            expanded.extend(w for cue in cues for w in words(cue))
    grams = [g for g in bigrams(text) if not (g[0] in STOPWORDS and g[1] in STOPWORDS)]
    grams = [g for g in grams if g not in STOPWORDS]
    out = expanded + grams + ["py" + _pinyin(g) for g in grams]
    return list(dict.fromkeys(t for t in out if t))


@lru_cache(maxsize=1)
def _posseg():
    import jieba.posseg

    return jieba.posseg.POSTokenizer(_jieba())


# nouns, names, places, organisations, abbreviations, English words, nominal verbs
_CONTENT_POS = ("n", "eng", "vn", "j", "b", "nz", "l", "x")


@lru_cache(maxsize=4096)
def key_words(text: str) -> tuple[tuple[str, bool], ...]:
    """Content words of a question for relevance checks: (word, is_noun), unique, in order."""
    out: dict[str, bool] = {}
    with _lock:
        pairs = list(_posseg().cut(normalize(text)))
    for pair in pairs:
        word, flag = pair.word.strip(), pair.flag
        if word and word not in STOPWORDS and _WORD.match(word):
            out.setdefault(word, flag.startswith(_CONTENT_POS) or word in _DOMAIN)
    return tuple(out.items())


_DOMAIN = frozenset(w.lower() for w in DOMAIN_WORDS) | frozenset(INTERNAL_TOPICS)


@lru_cache(maxsize=1)
def _homophones() -> dict[str, str]:
    """Toneless pinyin of each dictionary word and abbreviation -> the word (first one wins)."""
    out: dict[str, str] = {}
    for word in [*DOMAIN_WORDS, *SYNONYMS]:
        word = word.lower()
        if re.fullmatch(rf"[{_CJK}]{{2,}}", word):
            out.setdefault(_word_pinyin(word), word)
    return out


def _word_pinyin(word: str) -> str:
    return "".join(_pinyin(c) for c in word)


def correct(word: str) -> str | None:
    """The dictionary word ``word`` is a pinyin-IME typo of (集彩 -> 集采, 挂王 -> 挂网), if any."""
    if not re.fullmatch(rf"[{_CJK}]{{2,}}", word):
        return None
    found = _homophones().get(_word_pinyin(word))
    return found if found and found != word else None


def homophone_terms(word: str) -> list[str]:
    """The index terms that would find ``word`` through a homophone (pinyin of its bigrams)."""
    return ["py" + _pinyin(g) for g in bigrams(word)]
