"""The conversation router: decides what an incoming message means and who may do it.

Every channel hands its messages here. Behaviour is a list of small handlers: slash commands
(with the roles allowed), plain-text intents tried in order, button prefixes, file uploads and a
fallback for plain text. Identity and role checks happen once, in front of all of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot import texts
from bot.identity import Directory
from bot.messages import Incoming, Reply
from storage.models import Role, User

log = logging.getLogger(__name__)

Result = Reply | list[Reply] | None
Handler = Callable[["Turn"], Awaitable[Result]]
ALL_ROLES = frozenset(Role)


@dataclass
class Turn:
    """One incoming message with everything a handler needs to answer it."""

    msg: Incoming
    user: User
    args: str = ""  # text after the command, or the whole text for intents
    match: re.Match[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    handler: Handler
    roles: frozenset[Role] = ALL_ROLES
    usage: str = ""
    hidden: bool = False


@dataclass(frozen=True)
class Intent:
    pattern: re.Pattern[str]
    handler: Handler
    roles: frozenset[Role] = ALL_ROLES


class Router:
    def __init__(self, directory: Directory):
        self.directory = directory
        self.commands: dict[str, Command] = {}
        self.intents: list[Intent] = []
        self.buttons: dict[str, Handler] = {}
        self.file_handler: tuple[Handler, frozenset[Role]] | None = None
        self.fallback: Handler | None = None
        self.unbound: dict[str, Handler] = {}  # commands an unknown account may use (/bind)

    # registration -------------------------------------------------------------------------
    def command(self, name: str, summary: str, *, roles: Iterable[Role] = ALL_ROLES,
                usage: str = "", hidden: bool = False) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.commands[name] = Command(name, summary, handler, frozenset(roles), usage, hidden)
            return handler
        return register

    def intent(self, pattern: str, *, roles: Iterable[Role] = ALL_ROLES) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.intents.append(Intent(re.compile(pattern), handler, frozenset(roles)))
            return handler
        return register

    def button(self, prefix: str) -> Callable[[Handler], Handler]:
        """Handle presses whose payload is ``prefix:...``; the handler checks who may press."""
        def register(handler: Handler) -> Handler:
            self.buttons[prefix] = handler
            return handler
        return register

    def on_file(self, handler: Handler, *, roles: Iterable[Role]) -> None:
        self.file_handler = (handler, frozenset(roles))

    def on_text(self, handler: Handler) -> None:
        self.fallback = handler

    def unbound_command(self, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.unbound[name] = handler
            return handler
        return register

    def commands_for(self, role: Role) -> list[Command]:
        return [c for c in self.commands.values() if role in c.roles and not c.hidden]

    # dispatch -----------------------------------------------------------------------------
    async def handle(self, msg: Incoming) -> list[Reply]:
        """Answer one message. Never raises: an internal error becomes a polite reply."""
        try:
            return _as_list(await self._dispatch(msg))
        except Exception:
            log.exception("handler failed", extra={"channel": msg.channel})
            return [Reply(texts.INTERNAL_ERROR)]

    async def _dispatch(self, msg: Incoming) -> Result:
        user = self.directory.resolve(msg.channel, msg.account)
        name, args = _split_command(msg.text)
        if user is None:
            if name in self.unbound:
                fake = User(id="", name="", role=Role.rep)
                return await self.unbound[name](Turn(msg, fake, args, extra={"account": msg.account}))
            return Reply(texts.UNKNOWN_ACCOUNT)
        if not user.active:
            return Reply(texts.INACTIVE_USER.format(user=user.name))

        if msg.button is not None:
            prefix = msg.button.split(":", 1)[0]
            handler = self.buttons.get(prefix)
            if handler is None:
                return Reply(texts.BUTTON_UNKNOWN)
            return await handler(Turn(msg, user, msg.button.partition(":")[2]))

        if msg.file is not None:
            if self.file_handler is None or user.role not in self.file_handler[1]:
                return Reply(texts.FILE_NOT_ALLOWED)
            return await self.file_handler[0](Turn(msg, user, msg.text))

        if name is not None:
            command = self.commands.get(name)
            if command is None:
                return Reply(texts.UNKNOWN_COMMAND.format(command=name))
            if user.role not in command.roles:
                allowed = "、".join(texts.ROLE_NAMES[r] for r in sorted(command.roles))
                return Reply(texts.NOT_ALLOWED.format(command=name, roles=allowed,
                                                      role=texts.ROLE_NAMES[user.role]))
            return await command.handler(Turn(msg, user, args))

        text = msg.text.strip()
        for intent in self.intents:
            found = intent.pattern.search(text)
            if found and user.role in intent.roles:
                return await intent.handler(Turn(msg, user, text, match=found))
        if self.fallback is not None and text:
            return await self.fallback(Turn(msg, user, text))
        return Reply(texts.NOT_UNDERSTOOD)


def _split_command(text: str) -> tuple[str | None, str]:
    """``/comp 协和 300`` -> ("comp", "协和 300"); ``/help@salesbot_bot`` -> ("help", "")."""
    stripped = text.strip()
    if not stripped.startswith(("/", "／")):
        return None, stripped
    head, _, rest = stripped[1:].partition(" ")
    return head.split("@", 1)[0].lower(), rest.strip()


def _as_list(result: Result) -> list[Reply]:
    if result is None:
        return []
    return [result] if isinstance(result, Reply) else list(result)
