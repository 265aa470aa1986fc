"""User-facing text of the skills package (Chinese for reps and managers)."""

PARAM_MISSING = "缺少{label}。"
PARAM_TOO_LONG = "{label}太长了（最多 200 字）。"
PARAM_NOT_NUMBER = "{label}「{value}」不是有效的数字，请写成 300 或 12.5 这样的形式。"
PARAM_TOO_PRECISE = "{label}最多保留 {places} 位小数。"
PARAM_ZERO = "{label}不能为 0。"
PARAM_NEGATIVE = "{label}不能为负数。"
PARAM_HUGE = "{label}超出合理范围（绝对值不超过 {maximum}）。"

CAP_NAMES = {
    "compensation": "补偿包",
    "price_adjust": "调价",
    "free_repair": "免费维修/换新",
    "extended_warranty": "延保",
    "approve": "审批",
}

UNKNOWN_SKILL = "没有这个动作：{skill}。"
UNKNOWN_CUSTOMER = "没有找到客户「{query}」。请用客户全称、简称或编号，比如「北医三院」或 bj-pku3。"
AMBIGUOUS_CUSTOMER = "「{query}」对应多个客户：{names}。请写得更具体一些。"
NOT_YOUR_CUSTOMER = "{customer}不是你负责的客户（负责人：{owner}），不能为其申请。没有做任何改动。"
DUPLICATE = "这个申请已经处理过（#{id}，状态：{status}），没有重复提交。"

STATUS = {
    "executed": "已执行",
    "pending": "待审批",
    "denied": "已拒绝（规则）",
    "rejected": "已被驳回",
    "expired": "已过期",
    "blocked": "批准后复核未通过",
    "approved": "已批准",
}
ACTION = "{skill}{amount}"
EXECUTED = "✅ 已为{customer}办理{action}，凭证号 {reference}。\n{why}"
WHY_ALLOWED = "本次授权依据：{basis}"
DENIED_RULE = "❌ 不能为{customer}办理{action}：规则 {rules} 禁止{error}。没有做任何改动。"
DENIED_CAP = "❌ 不能为{customer}办理{action}：超过{cap_name}硬上限 {cap}，任何审批都不能突破。"
DENIED_NO_APPROVER = "❌ {action}超出了你的权限，而且审批链上没有人有权批准这个金额，申请未提交。"
SENT_FOR_APPROVAL = (
    "⏳ {action}超出了你当前的权限（{authority}），已提交给 {approver} 审批（申请 #{id}）。结果出来会通知你。"
)
CARD = (
    "【审批请求 #{id}】{rep} 申请为{customer}办理{action}\n原因：{reason}\n{rep}当前权限：{authority}\n"
    "依据：{basis}\n硬上限：{cap}"
)
CARD_ESCALATED = "（{old} 超时未处理，已升级给你）"
APPROVE = "批准"
REJECT = "拒绝"

APPROVAL_NOT_FOUND = "没有找到审批 #{id}，这个按钮可能已失效。没有做任何改动。"
APPROVAL_NOT_YOURS = (
    "你不是审批 #{id} 的审批人（审批人：{approver}），也不在其上级链上，不能处理。没有做任何改动。"
)
APPROVAL_ALREADY = "审批 #{id} 已经处理过了：{status}（{by}）。没有重复执行。"
APPROVED_DONE = "✅ 你已批准 #{id}：为{customer}办理{action}，凭证号 {reference}。"
APPROVED_BLOCKED = "⚠️ 你批准了 #{id}，但执行前复核未通过：{why}。没有执行。"
REJECTED_DONE = "你已拒绝 #{id}（{rep} 为{customer}申请{action}）。"
TOLD_APPROVED = "✅ {approver} 批准了你的申请 #{id}：已为{customer}办理{action}，凭证号 {reference}。"
TOLD_BLOCKED = "⚠️ {approver} 批准了你的申请 #{id}，但执行前复核未通过：{why}。没有执行。"
TOLD_REJECTED = "❌ {approver} 拒绝了你的申请 #{id}（{customer}，{action}）。"
TOLD_OTHER_DECIDED = "审批 #{id} 已由 {by} {status}。"
TOLD_ESCALATED = "⏫ 你的申请 #{id} 在 {old} 处超时未处理，已升级给 {new}。"
TOLD_ESCALATED_OLD = "审批 #{id} 超时未处理，已升级给 {new}。"
TOLD_EXPIRED = "⌛ 你的申请 #{id}（{customer}，{action}）超时无人审批，已过期，没有执行。可以重新提交。"
TOLD_EXPIRED_APPROVER = "审批 #{id} 已超时过期。"

BLOCK_DENY = "规则 {rules} 现在禁止这个动作"
BLOCK_CAP = "超过硬上限 {cap}"
BLOCK_AUTHORITY = "审批人的权限已不足以覆盖这个金额"

AUTH_HEADER = "{name}对{customer}现在的权限："
AUTH_HEADER_ALL = "{name}现在的权限（未指定客户，只含角色基线和已开放的授权）："
AUTH_LINE = "· {cap}：{what}"
AUTH_FREE = "{limit}以内可直接办理"
AUTH_YES = "可直接办理"
AUTH_NEEDS = "{limit}以内需审批"
AUTH_NONE = "无权限，需审批"
AUTH_CAP = "；硬上限 {cap}"
AUTH_DENIED = "被规则 {rules} 禁止"
AUTH_GRANT = "  - 规则 {rule}：{limit}{free}{until}{uses}（依据 {tags}）"
AUTH_GRANTS = "生效中的授权："
AUTH_NO_GRANTS = "没有生效中的数据授权，只有角色基线。"
PENDING_NONE = "没有待你审批的申请。"
PENDING_HEAD = "待你审批的申请（{n}）："
PENDING_LINE = "#{id} {rep} · {customer} · {action} · 提交于 {at}"
AUDIT_NONE = "{customer}还没有审计记录。"
AUDIT_HEAD = "{customer}最近的记录："
AUDIT_NOT_ALLOWED = "只有客户负责人及其上级可以查看{customer}的审计记录。"
GRANT_OPENED = "🔓 新授权：规则 {rule} 为你开放了{cap}{limit}（{scope}{until}）。依据：{tags}"
GRANT_CLOSED = "🔒 授权收回：规则 {rule} 的{cap}（{scope}）已关闭，原因：{reason}。"
CLOSE_REASONS = {
    "condition_false": "触发条件不再成立",
    "condition_error": "条件无法求值（数据缺失或类型不对）",
}
