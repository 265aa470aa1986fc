"""Commands every user has: /start, /help, /whoami."""

from __future__ import annotations

from bot import texts
from bot.messages import Reply
from bot.router import Router, Turn


def register_basic(router: Router) -> None:
    @router.command("start", "开始使用，打个招呼", hidden=True)
    async def start(turn: Turn) -> Reply:
        return Reply(texts.GREETING.format(name=turn.user.name, role=texts.ROLE_NAMES[turn.user.role]))

    @router.command("help", "查看你可以做什么")
    async def help_(turn: Turn) -> Reply:
        lines = [texts.HELP_HEADER.format(name=turn.user.name, role=texts.ROLE_NAMES[turn.user.role])]
        for cmd in router.commands_for(turn.user.role):
            usage = f" {cmd.usage}" if cmd.usage else ""
            lines.append(f"/{cmd.name}{usage} — {cmd.summary}")
        lines.append(texts.HELP_FOOTER)
        return Reply("\n".join(lines))

    @router.command("whoami", "查看我的身份、区域和上级")
    async def whoami(turn: Turn) -> Reply:
        user = turn.user
        manager = router.directory.get(user.manager_id) if user.manager_id else None
        return Reply(texts.WHOAMI.format(
            name=user.name, id=user.id, role=texts.ROLE_NAMES[user.role],
            region=user.region or "—", manager=manager.name if manager else "—",
        ))
