"""User-facing text of the bot package, in one place (Chinese for reps and managers)."""

UNKNOWN_ACCOUNT = (
    "你好，我还不认识这个账号。请向管理员索取绑定码，然后发送「/bind 绑定码」完成注册。"
)
UNKNOWN_USER_CLI = "未知用户 {user!r}：组织文件里没有这个 id。可用的用户：{known}"
INACTIVE_USER = "账号 {user} 已停用，如有疑问请联系管理员。"
NOT_ALLOWED = "「/{command}」只对{roles}开放，你当前的角色是{role}。"
UNKNOWN_COMMAND = "没有「/{command}」这个命令。发送 /help 查看你可以做什么。"
NOT_UNDERSTOOD = "我还不会处理这句话。发送 /help 查看你可以做什么。"
BUTTON_UNKNOWN = "这个按钮已失效或无法识别，没有做任何改动。"
FILE_NOT_ALLOWED = "只有知识管理员可以上传文档。"
INTERNAL_ERROR = "抱歉，处理时出错了，没有做任何改动。请稍后再试；如果一直出错，请联系管理员。"

ROLE_NAMES = {"rep": "销售代表", "manager": "销售经理", "admin": "知识管理员"}

GREETING = "你好，{name}（{role}）！我是 salesbot。发送 /help 查看你可以做什么。"
HELP_HEADER = "{name}，你好。作为{role}，你可以："
HELP_FOOTER = "也可以直接用中文提问，比如「集采中选结果啥时候执行？」"
WHOAMI = "你是 {name}（{id}），角色：{role}，区域：{region}，上级：{manager}。"

TERMINAL_BANNER = "salesbot 终端对话 — 你是 {name}（{role}）。输入 /help 查看命令，Ctrl-D 退出。"
TERMINAL_TO_OTHER = "→ 发给 {name}："
TERMINAL_BUTTONS = "按钮："

ACTION_USAGE = {
    "comp": "用法：/comp 客户 金额 [原因]，例如 /comp 北医三院 300 交付延迟",
    "price": "用法：/price 客户 百分比 [原因]，例如 /price 积水潭 -12（降价 12%）",
    "repair": "用法：/repair 客户 [设备/原因]，例如 /repair 鼓楼 CT球管",
    "warranty": "用法：/warranty 客户 月数 [原因]，例如 /warranty 省人医 12",
    "audit": "用法：/audit 客户，例如 /audit 北医三院",
}
BUTTON_MALFORMED = "这个按钮的数据不完整或已损坏，没有做任何改动。"
AUDIT_ACTIONS = {
    "decision": "决策", "approval.create": "提交审批", "approval.approve": "批准", "approval.reject": "拒绝",
    "approval.escalate": "升级", "approval.expire": "过期", "execute": "执行",
    "execute.blocked": "复核未通过",
    "grant.open": "开放授权", "grant.close": "收回授权", "tags.set": "标签变更", "rules.reload": "规则重载",
}
