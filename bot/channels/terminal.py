"""The terminal channel: a chat in the console, scriptable when stdin is not a TTY.

Buttons are shown numbered; typing ``[n]`` (or just ``n`` right after a reply with buttons) presses one.
"""

from __future__ import annotations

import sys
from typing import TextIO

from bot import texts
from bot.identity import Directory
from bot.messages import Button, Incoming, Reply
from bot.router import Router


class TerminalChannel:
    name = "terminal"

    def __init__(self, router: Router, directory: Directory, user_id: str,
                 stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.router = router
        self.directory = directory
        self.user_id = user_id
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._buttons: list[Button] = []

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty()

    async def run(self) -> None:
        """Read messages until end of input, printing every reply."""
        user = self.directory.get(self.user_id)
        assert user is not None
        if self.interactive:
            self._print(texts.TERMINAL_BANNER.format(name=user.name, role=texts.ROLE_NAMES[user.role]))
        while True:
            if self.interactive:
                self.stdout.write("你> ")
                self.stdout.flush()
            line = self.stdin.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            for reply in await self.router.handle(self._incoming(line)):
                self.show(reply)

    def _incoming(self, line: str) -> Incoming:
        choice = line.strip("[]")
        if self._buttons and choice.isdigit() and 1 <= int(choice) <= len(self._buttons):
            return Incoming(self.name, self.user_id, button=self._buttons[int(choice) - 1].payload)
        return Incoming(self.name, self.user_id, text=line)

    def show(self, reply: Reply) -> None:
        if reply.to and reply.to != self.user_id:
            other = self.directory.get(reply.to)
            self._print(texts.TERMINAL_TO_OTHER.format(name=other.name if other else reply.to))
        self._print(reply.text)
        flat = [b for row in reply.buttons for b in row]
        if flat and (reply.to in (None, self.user_id)):
            self._buttons = flat
            self._print(texts.TERMINAL_BUTTONS + "  ".join(f"[{i}] {b.text}" for i, b in enumerate(flat, 1)))

    def _print(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    # the Channel interface's push side: the terminal shows pushes for its own user only
    async def send(self, user_id: str, reply: Reply) -> None:
        if user_id == self.user_id:
            self.show(reply)
