"""User-facing Chinese text of the signals skills (notes, journey alerts, health, digest)."""

FINDING_LABELS = {
    "competitor": "提到竞品：{value}",
    "competitor_quote": "竞品报价/页面浏览 +{value}",
    "price_gap": "竞品价差 {value}%（正数=竞品更便宜）",
    "complaint": "客户投诉/不满",
    "delivery_delay": "到货延迟",
    "interest": "对产品感兴趣：{value}",
    "sentiment": "客户情绪：{value}",
    "meeting_cut_short": "会谈被打断/提前结束",
}
SENTIMENT_NAMES = {"positive": "正面", "negative": "负面"}
TAG_NAMES = {
    "competitor": "竞品", "competitor_views": "竞品浏览/报价次数", "competitor_price_gap": "竞品价差%",
    "complaint": "投诉", "delivery_delay": "到货延迟", "interested_products": "感兴趣的产品",
    "sentiment": "情绪", "meeting_cut_short": "会谈中断",
}

NOTE_USAGE = "用法：/note 客户 内容，例如「/note 协和 王主任说竞品报价低了10%」。"
NOTE_NO_CUSTOMER = "没认出是哪家客户。请写客户名称或简称，例如「/note 协和 王主任说竞品报价低了10%」。"
NOTE_NOT_YOURS = "「{customer}」不是你负责的客户（负责人：{owner}），这条记录没有保存。"
NOTE_EMPTY = "记录内容是空的，请写下客户的反馈。"
NOTE_SAVED = "已记录到「{customer}」{opportunity}（记录 #{id}）。"
NOTE_OPPORTUNITY = "，商机 {id}"
NOTE_FOUND = "识别到："
NOTE_TAGS = "已更新客户标签："
NOTE_NOTHING = "没有识别到可更新的标签，原文已保存。"
NOTE_TAG_LINE = "· {name}：{old} → {new}"
BUTTON_UNDO_ALL = "识别有误，全部撤销"
BUTTON_DROP_TAG = "去掉「{name}」"

UNDO_UNKNOWN = "找不到记录 #{id}。"
UNDO_NOT_ALLOWED = "只有记录人或其上级可以更正这条记录。"
UNDO_NOTHING = "记录 #{id} 没有需要撤销的标签（可能已经更正过）。"
UNDO_DONE = "已更正记录 #{id}，撤销了：{tags}。原文仍保留。"
UNDO_SKIPPED = "未回退（之后已被其他来源修改）：{tags}。"

BREAKPOINT_ALERT = "客户旅程断点：{customer} — {rule}（{at}）。责任岗位：{role}。"
BREAKPOINT_REPEAT = "（{days} 天内第 {count} 次）"
BREAKPOINT_MANAGER = "团队客户旅程断点重复出现：{customer}（{owner}）— {rule}，{days} 天内 {count} 次。"
ROLE_NAMES = {"rep": "销售代表", "manager": "销售经理", "service": "客服", "it": "IT", "store": "门店导购"}

HEALTH_LINE = "健康度 {score}{delta}：{reasons}"
HEALTH_DOWN = "，下降 {points}"
HEALTH_UP = "，上升 {points}"
HEALTH_OK = "各项正常"
REASON_IDLE = "已 {days} 天无拜访"
REASON_STAGE = "在「{stage}」阶段 {days} 天（通常 {typical} 天）"
REASON_COMPLAINT = "客户投诉"
REASON_DELAY = "到货延迟"
REASON_COMPETITOR = "竞品报价出现"
REASON_NEGATIVE = "客户情绪负面"
REASON_CUT_SHORT = "会谈被打断"
REASON_NPS_DROP = "NPS 下降 {points}"
REASON_COMPETITOR_VIEWS = "竞品浏览增加 {count} 次"
REASON_POSITIVE = "客户反馈积极"

NEXT_STEPS = {
    "idle": "本周安排一次拜访或电话，确认项目进展和下一步",
    "stage": "和关键人确认决策时间表，推动进入下一阶段",
    "competitor": "准备差异化价值和总拥有成本对比，必要时申请调价授权",
    "complaint": "先处理投诉：联系售后，给客户一个明确的解决时间",
    "delay": "和物流核实到货时间，主动告知客户",
    "negative": "约见关键人，了解顾虑",
    "cut_short": "重新约一次完整的会谈",
    "nps": "回访客户，了解满意度下降的原因",
    "competitor_views": "了解客户在比较哪些竞品，准备对比材料",
}

DIGEST_REP_HEADER = "早上好，{name}。今天需要关注的商机（{count} 个）："
DIGEST_ITEM = "{n}. {opp}｜{customer}｜{stage}｜{health}\n   下一步：{next}"
DIGEST_MANAGER_HEADER = "早上好，{name}。团队需要关注的商机（{count} 个）："
DIGEST_MANAGER_ITEM = "{n}. {rep}｜{opp}｜{customer}｜{health}"
DIGEST_MORE = "……另有 {count} 个，发送 /health 查看全部。"
HEALTH_MINE_HEADER = "你的在跟商机健康度（{count} 个）："
HEALTH_MINE_ITEM = "{opp}｜{customer}｜{stage}｜{health}"
HEALTH_NONE = "你目前没有在跟的商机。"
