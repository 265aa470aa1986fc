"""A fake Telegram Bot API server speaking the wire format python-telegram-bot uses.

Routes (PTB appends the token to ``base_url`` / ``base_file_url``):

* ``POST|GET /bot<TOKEN>/<method>``: form-encoded, multipart or JSON parameters; answers
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": ...}``
  with HTTP status ``N`` (PTB maps the status and ``parameters.retry_after``).
* ``GET /file/bot<TOKEN>/<file_path>``: bytes of a pushed or uploaded file.

Implemented methods: getMe, getUpdates (offset, limit, long-poll timeout), deleteWebhook,
setWebhook, getWebhookInfo, sendMessage, sendDocument, editMessageText,
editMessageReplyMarkup, answerCallbackQuery, getFile, sendChatAction, deleteMessage,
setMyCommands, getMyCommands, deleteMyCommands, close, logOut. Anything else answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import mimetypes
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from . import FakeHTTPServer

__all__ = ["FakeTelegramServer", "StoredFile", "TelegramCall", "UploadedFile"]

JSONDict = dict[str, Any]

# Parameters that are plain strings on the wire and must never be JSON-decoded
# (a message text "123" stays "123"). Everything else is JSON-decoded when possible,
# mirroring PTB, which json.dumps every non-str value (ints, bools, reply_markup...).
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "file_id",
        "url",
        "secret_token",
        "ip_address",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "action",
        "language_code",
        "document",
        "emoji",
    }
)

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: injected failure",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class TelegramCall(NamedTuple):
    """One request received by the fake: ``(method, params)``; unpacks as a 2-tuple."""

    method: str
    params: JSONDict


@dataclass(frozen=True)
class UploadedFile:
    """A multipart file part (e.g. ``document`` of sendDocument) as received."""

    filename: str
    content_type: str
    content: bytes


@dataclass
class StoredFile:
    """A file the fake can serve through getFile and the file download route."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    file_name: str
    mime_type: str


@dataclass
class _Failure:
    method: str
    times: int
    error_code: int
    description: str
    parameters: JSONDict | None
    chat_id: int | str | None


@dataclass
class _RateLimit:
    global_per_s: float
    per_chat_per_s: float
    methods: frozenset[str]
    global_sent: deque[float] = field(default_factory=deque)
    chat_sent: dict[Any, deque[float]] = field(default_factory=dict)


class _TelegramError(Exception):
    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class FakeTelegramServer(FakeHTTPServer):
    """Fake Telegram Bot API.

    Args:
        token: the bot token PTB is configured with; other tokens get 401.
        bot_username: ``username`` of the bot user returned by getMe.
        bot_first_name: ``first_name`` of the bot user.
        strict: answer 400 like Telegram when editing an unknown message, when an edit
            changes nothing ("message is not modified") and for unknown callback query ids.
    """

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_username: str = "salesbot_test_bot",
        bot_first_name: str = "SalesBot",
        strict: bool = True,
    ) -> None:
        super().__init__()
        self.token = token
        prefix = token.split(":", 1)[0]
        self.bot_user: JSONDict = {
            "id": int(prefix) if prefix.isdigit() else 123456789,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.strict = strict
        #: Every request, in order, including ones answered with an error.
        self.calls: list[TelegramCall] = []
        #: Requests answered with an error: ``(method, params, error_code)``.
        self.failures: list[tuple[str, JSONDict, int]] = []
        #: answerCallbackQuery params, in order.
        self.answered_callbacks: list[JSONDict] = []
        #: setWebhook state (``None`` when no webhook is set).
        self.webhook: JSONDict | None = None
        #: sendMessage/sendDocument calls rejected by :meth:`enforce_rate_limits`.
        self.rate_limit_violations: int = 0
        #: ``(method, chat_id, time.monotonic())`` of each rate-limit violation.
        self.rate_limit_log: list[tuple[str, Any, float]] = []
        #: Files getFile can serve, by file_id (pushed documents and uploads).
        self.files: dict[str, StoredFile] = {}
        self._updates: list[JSONDict] = []
        self._successful: list[TelegramCall] = []
        self._messages: dict[tuple[Any, int], JSONDict] = {}
        self._next_message_id: dict[Any, int] = {}
        self._update_ids = itertools.count(100_000)
        self._callback_ids = itertools.count(4_000_000_000_000_001)
        self._issued_callbacks: set[str] = set()
        self._chat_users: dict[Any, JSONDict] = {}
        self._file_counter = itertools.count(1)
        self._failures: list[_Failure] = []
        self._rate_limit: _RateLimit | None = None
        self._commands: list[JSONDict] = []
        self._wakeup: asyncio.Event | None = None
        self._poll_generation = 0
        self._handlers: dict[str, Callable[[JSONDict], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "getFile": self._get_file,
            "sendChatAction": self._true,
            "deleteMessage": self._delete_message,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "close": self._true,
            "logOut": self._true,
        }
        self._canonical = {name.lower(): name for name in self._handlers}

    # == addresses ==========================================================================
    @property
    def base_url(self) -> str:
        """Value for ``Application.builder().base_url(...)``: ``http://127.0.0.1:PORT/bot``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``.base_file_url(...)``: ``http://127.0.0.1:PORT/file/bot``."""
        return f"{self.url}/file/bot"

    # == building updates =====================================================================
    def user(self, user_id: int, username: str | None = None, first_name: str | None = None) -> JSONDict:
        """A realistic (non-bot) User object."""
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name or f"User{user_id}",
            "username": username or f"user{user_id}",
            "language_code": "en",
        }

    def chat(self, chat_id: int | str, user: JSONDict | None = None) -> JSONDict:
        """A Chat object: private for positive ids, (super)group for negative ones."""
        if isinstance(chat_id, int) and chat_id > 0:
            chat: JSONDict = {"id": chat_id, "type": "private"}
            if user:
                chat["first_name"] = user["first_name"]
                chat["username"] = user.get("username")
            return chat
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def make_text_update(
        self,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        username: str | None = None,
        first_name: str | None = None,
    ) -> JSONDict:
        """Build (not queue) a ``message`` update; ``/commands`` get a bot_command entity."""
        user = self.user(self._user_id(chat_id, user_id), username, first_name)
        message = self._new_message(chat_id, user, text=text)
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def make_callback_update(
        self,
        chat_id: int,
        data: str,
        message_id: int,
        user_id: int | None = None,
        username: str | None = None,
    ) -> JSONDict:
        """Build a ``callback_query`` update for a button on message ``message_id``.

        If the message is not one the bot sent through this fake, a stub bot message with
        an empty keyboard is registered so edits of it work.
        """
        user = self.user(self._user_id(chat_id, user_id), username)
        message = self._messages.get((chat_id, message_id))
        if message is None:
            message = {
                "message_id": message_id,
                "from": self.bot_user,
                "chat": self.chat(chat_id, user),
                "date": int(time.time()),
                "text": "(message)",
            }
            self._messages[(chat_id, message_id)] = message
            nxt = self._next_message_id.get(chat_id, 1)
            self._next_message_id[chat_id] = max(nxt, message_id + 1)
        query_id = str(next(self._callback_ids))
        self._issued_callbacks.add(query_id)
        query = {
            "id": query_id,
            "from": user,
            "message": dict(message),
            "chat_instance": str(abs(int(chat_id)) * 1_000_003),
            "data": data,
        }
        return {"update_id": next(self._update_ids), "callback_query": query}

    def make_document_update(
        self,
        chat_id: int,
        filename: str,
        content: bytes,
        mime_type: str | None = None,
        user_id: int | None = None,
        caption: str | None = None,
    ) -> JSONDict:
        """Build a ``message`` update carrying a document; the file becomes downloadable."""
        mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        stored = self.add_file(content, filename, mime)
        user = self.user(self._user_id(chat_id, user_id))
        message = self._new_message(chat_id, user, document=self._document_obj(stored))
        if caption is not None:
            message["caption"] = caption
        return {"update_id": next(self._update_ids), "message": message}

    def add_file(
        self, content: bytes, filename: str, mime_type: str = "application/octet-stream"
    ) -> StoredFile:
        """Register bytes so getFile/download serve them; returns the stored file."""
        n = next(self._file_counter)
        suffix = ""
        if "." in filename:
            suffix = "." + filename.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{n:06d}fake",
            file_unique_id=f"AgAD{n:06d}",
            file_path=f"documents/file_{n}{suffix}",
            content=content,
            file_name=filename,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        return stored

    # == pushing updates (what the bot receives through getUpdates) ===========================
    def push_update(self, update: JSONDict) -> int:
        """Queue a raw update dict for getUpdates; returns its ``update_id``."""
        if "update_id" not in update:
            update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._in_server_loop(self._wake)
        return int(update["update_id"])

    def push_text(
        self,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        username: str | None = None,
        first_name: str | None = None,
    ) -> int:
        """Queue a text message from a user; returns the update_id."""
        return self.push_update(self.make_text_update(chat_id, text, user_id, username, first_name))

    def push_callback(self, chat_id: int, data: str, message_id: int, user_id: int | None = None) -> str:
        """Queue a button press (callback_query); returns the callback query id."""
        update = self.make_callback_update(chat_id, data, message_id, user_id)
        self.push_update(update)
        return str(update["callback_query"]["id"])

    def push_document(
        self,
        chat_id: int,
        filename: str,
        content: bytes,
        mime_type: str | None = None,
        user_id: int | None = None,
        caption: str | None = None,
    ) -> str:
        """Queue a document message; returns the document's file_id (getFile works for it)."""
        update = self.make_document_update(chat_id, filename, content, mime_type, user_id, caption)
        self.push_update(update)
        return str(update["message"]["document"]["file_id"])

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    async def deliver_to_webhook(self, update: JSONDict, url: str | None = None) -> int:
        """POST an update to ``url`` (default: the URL set by setWebhook) like Telegram does.

        Sends ``X-Telegram-Bot-Api-Secret-Token`` when a secret token was set. Returns the
        HTTP status of the bot's answer.
        """
        target = url or (self.webhook or {}).get("url")
        if not target:
            raise RuntimeError("no webhook URL set and none given")
        headers = {}
        secret = (self.webhook or {}).get("secret_token")
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(secret)
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, json=update, headers=headers) as resp,
        ):
            return resp.status

    # == inspection =============================================================================
    def called(self, method: str) -> int:
        """How many times ``method`` was requested (errors included)."""
        return sum(1 for c in self.calls if c.method == method)

    def params_of(self, method: str) -> list[JSONDict]:
        """Params of every request to ``method`` (errors included), in order."""
        return [c.params for c in self.calls if c.method == method]

    def _ok_params(self, methods: set[str], chat_id: int | str | None) -> list[JSONDict]:
        return [
            c.params
            for c in self._successful
            if c.method in methods and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSONDict]:
        """Params of successful sendMessage calls (optionally for one chat), in order."""
        return self._ok_params({"sendMessage"}, chat_id)

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        """Just the texts of :meth:`sent_messages`."""
        return [str(p.get("text", "")) for p in self.sent_messages(chat_id)]

    def sent_documents(self, chat_id: int | str | None = None) -> list[JSONDict]:
        """Params of successful sendDocument calls; ``document`` is an :class:`UploadedFile`
        for uploads, else the file_id/URL string."""
        return self._ok_params({"sendDocument"}, chat_id)

    def edits(self, chat_id: int | str | None = None, method: str | None = None) -> list[JSONDict]:
        """Params of successful editMessageText / editMessageReplyMarkup calls, in order."""
        methods = {method} if method else {"editMessageText", "editMessageReplyMarkup"}
        return self._ok_params(methods, chat_id)

    def message(self, chat_id: int | str, message_id: int) -> JSONDict | None:
        """Current state (edits applied) of a message in the fake's store."""
        return self._messages.get((chat_id, message_id))

    def history(self, chat_id: int | str) -> list[JSONDict]:
        """All messages of a chat known to the fake (both directions), by message_id."""
        items = [m for (c, _), m in list(self._messages.items()) if c == chat_id]
        return sorted(items, key=lambda m: m["message_id"])

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSONDict]:
        """Wait until ``method`` was requested ``count`` times; returns their params.

        Raises ``TimeoutError`` (listing the calls seen) if it does not happen in time.
        """
        await self._poll_until(
            lambda: self.called(method) >= count, timeout, lambda: self._timeout_msg(method, count)
        )
        return self.params_of(method)

    def wait_for_sync(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSONDict]:
        """Blocking :meth:`wait_for` for use with :meth:`run_in_thread`."""
        self._poll_until_sync(
            lambda: self.called(method) >= count, timeout, lambda: self._timeout_msg(method, count)
        )
        return self.params_of(method)

    def _timeout_msg(self, method: str, count: int) -> str:
        seen = [c.method for c in self.calls]
        return f"{method} called {self.called(method)}/{count} times; calls so far: {seen}"

    def reset_calls(self) -> None:
        """Forget recorded calls (not messages, files or updates)."""
        self.calls.clear()
        self._successful.clear()
        self.failures.clear()
        self.answered_callbacks.clear()

    # == failure injection =======================================================================
    def fail_next(
        self,
        method: str,
        times: int = 1,
        error_code: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
        chat_id: int | str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error.

        429 answers ``"Too Many Requests: retry after N"`` with ``parameters.retry_after``
        (PTB raises ``telegram.error.RetryAfter``); 400 -> ``BadRequest``, 403 ->
        ``Forbidden``, 5xx -> ``NetworkError``. ``chat_id`` restricts it to one chat.
        """
        parameters = None
        if error_code == 429:
            retry_after = retry_after or 1
            parameters = {"retry_after": retry_after}
            description = description or f"Too Many Requests: retry after {retry_after}"
        description = description or _DEFAULT_DESCRIPTIONS.get(error_code, "Injected failure")
        self._failures.append(_Failure(method, times, error_code, description, parameters, chat_id))

    def enforce_rate_limits(
        self,
        global_per_s: float = 30,
        per_chat_per_s: float = 1,
        methods: tuple[str, ...] = ("sendMessage", "sendDocument"),
    ) -> None:
        """Answer 429 (with retry_after) to sends over the given rates; counts violations.

        Rates are checked over a sliding 1 s window (globally) and a ``1/per_chat_per_s``
        window per chat. Rejected sends do not count towards the rates.
        """
        self._rate_limit = _RateLimit(global_per_s, per_chat_per_s, frozenset(methods))

    def disable_rate_limits(self) -> None:
        """Undo :meth:`enforce_rate_limits`."""
        self._rate_limit = None

    def _check_injected(self, method: str, params: JSONDict) -> None:
        for failure in self._failures:
            if failure.method != method:
                continue
            if failure.chat_id is not None and params.get("chat_id") != failure.chat_id:
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            raise _TelegramError(failure.error_code, failure.description, failure.parameters)

    def _check_rate(self, method: str, params: JSONDict) -> None:
        rl = self._rate_limit
        if rl is None or method not in rl.methods:
            return
        now = time.monotonic()
        chat_id = params.get("chat_id")
        chat_window = 1.0 / rl.per_chat_per_s if rl.per_chat_per_s > 0 else 0.0
        while rl.global_sent and now - rl.global_sent[0] >= 1.0:
            rl.global_sent.popleft()
        chat_q = rl.chat_sent.setdefault(chat_id, deque())
        while chat_q and now - chat_q[0] >= chat_window:
            chat_q.popleft()
        wait = 0.0
        if rl.global_per_s > 0 and len(rl.global_sent) >= rl.global_per_s:
            wait = max(wait, 1.0 - (now - rl.global_sent[0]))
        if chat_window > 0 and chat_q:
            wait = max(wait, chat_window - (now - chat_q[0]))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            self.rate_limit_violations += 1
            self.rate_limit_log.append((method, chat_id, now))
            raise _TelegramError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        rl.global_sent.append(now)
        chat_q.append(now)

    # == server ==================================================================================
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        return app

    async def _on_start(self) -> None:
        self._wakeup = asyncio.Event()

    async def _on_stop(self) -> None:
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = asyncio.Event()

    @staticmethod
    def _error(code: int, description: str, parameters: JSONDict | None = None) -> web.Response:
        payload: JSONDict = {"ok": False, "error_code": code, "description": description}
        if parameters:
            payload["parameters"] = parameters
        return web.json_response(payload, status=code)

    async def _handle_method(self, request: web.Request) -> web.Response:
        raw_method = request.match_info["method"]
        method = self._canonical.get(raw_method.lower(), raw_method)
        params = await self._read_params(request)
        self.calls.append(TelegramCall(method, params))
        if request.match_info["token"] != self.token:
            self.failures.append((method, params, 401))
            return self._error(401, "Unauthorized")
        handler = self._handlers.get(method)
        if handler is None:
            self.failures.append((method, params, 404))
            return self._error(404, "Not Found")
        try:
            self._check_injected(method, params)
            self._check_rate(method, params)
            result = await handler(params)
        except _TelegramError as exc:
            self.failures.append((method, params, exc.code))
            return self._error(exc.code, exc.description, exc.parameters)
        self._successful.append(TelegramCall(method, params))
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        path = request.match_info["file_path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.content, content_type=stored.mime_type)
        return self._error(404, "Not Found")

    @staticmethod
    async def _read_params(request: web.Request) -> JSONDict:
        params: JSONDict = {}
        for key, value in request.query.items():
            params[key] = _decode_value(key, value)
        if request.method not in ("POST", "PUT") or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
            return params
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = UploadedFile(
                    filename=value.filename,
                    content_type=value.content_type,
                    content=value.file.read(),
                )
            else:
                params[key] = _decode_value(key, str(value))
        return params

    # == method implementations ===================================================================
    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return dict(self.bot_user)

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook is not None:
            raise _TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # terminate an older long poll, as Telegram does
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._wakeup
            pending = self._pending(offset)
            if pending or self._closing:
                return pending[:limit]
            if generation != self._poll_generation:
                raise _TelegramError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            remaining = deadline - loop.time()
            if remaining <= 0 or event is None:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _pending(self, offset: int) -> list[JSONDict]:
        if offset > 0:
            return [u for u in self._updates if u["update_id"] >= offset]
        return list(self._updates)

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _set_webhook(self, params: JSONDict) -> bool:
        if not params.get("url"):
            return await self._delete_webhook(params)
        self.webhook = dict(params)
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        return {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._require(params, "chat_id")
        text = params.get("text")
        if not text:
            raise _TelegramError(400, "Bad Request: message text is empty")
        if len(str(text)) > 4096:
            raise _TelegramError(400, "Bad Request: message is too long")
        message = self._new_message(chat_id, self.bot_user, text=str(text))
        self._apply_common(message, params)
        return message

    async def _send_document(self, params: JSONDict) -> JSONDict:
        chat_id = self._require(params, "chat_id")
        doc = self._require(params, "document")
        if isinstance(doc, UploadedFile):
            stored = self.add_file(doc.content, doc.filename, doc.content_type)
        elif isinstance(doc, str) and doc in self.files:
            stored = self.files[doc]
        elif isinstance(doc, str) and doc.startswith(("http://", "https://")):
            name = doc.rstrip("/").rsplit("/", 1)[-1] or "file"
            stored = self.add_file(b"", name)
        else:
            raise _TelegramError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        message = self._new_message(chat_id, self.bot_user, document=self._document_obj(stored))
        if params.get("caption"):
            message["caption"] = params["caption"]
        self._apply_common(message, params)
        return message

    async def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text = params.get("text")
        if not text:
            raise _TelegramError(400, "Bad Request: message text is empty")
        if params.get("inline_message_id"):
            return True
        message = self._find_message(params)
        markup = params.get("reply_markup")
        if self.strict and message.get("text") == text and _inline(markup) == message.get("reply_markup"):
            raise _TelegramError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        message["text"] = str(text)
        message.pop("entities", None)
        message.pop("reply_markup", None)
        self._apply_common(message, params)
        message["edit_date"] = int(time.time())
        return dict(message)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        if params.get("inline_message_id"):
            return True
        message = self._find_message(params)
        markup = _inline(params.get("reply_markup"))
        if self.strict and markup == message.get("reply_markup"):
            raise _TelegramError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return dict(message)

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(self._require(params, "callback_query_id"))
        if self.strict and not self._known_callback(query_id):
            raise _TelegramError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self.answered_callbacks.append(params)
        return True

    async def _get_file(self, params: JSONDict) -> JSONDict:
        file_id = str(self._require(params, "file_id"))
        stored = self.files.get(file_id)
        if stored is None:
            raise _TelegramError(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _delete_message(self, params: JSONDict) -> bool:
        key = (self._require(params, "chat_id"), int(self._require(params, "message_id")))
        if key not in self._messages:
            raise _TelegramError(400, "Bad Request: message to delete not found")
        del self._messages[key]
        return True

    async def _set_my_commands(self, params: JSONDict) -> bool:
        self._commands = list(params.get("commands") or [])
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return list(self._commands)

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self._commands = []
        return True

    # == helpers ===================================================================================
    @staticmethod
    def _require(params: JSONDict, name: str) -> Any:
        value = params.get(name)
        if value is None or value == "":
            raise _TelegramError(400, f"Bad Request: {name} is empty")
        return value

    @staticmethod
    def _user_id(chat_id: int, user_id: int | None) -> int:
        if user_id is not None:
            return user_id
        return chat_id if isinstance(chat_id, int) and chat_id > 0 else 1000

    def _new_message(self, chat_id: Any, sender: JSONDict, **content: Any) -> JSONDict:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        if sender.get("is_bot"):
            # keep the private chat's name consistent with the user's own messages
            chat_user = self._chat_users.get(chat_id)
        else:
            chat_user = self._chat_users.setdefault(chat_id, sender)
        message: JSONDict = {
            "message_id": message_id,
            "from": dict(sender),
            "chat": self.chat(chat_id, chat_user),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat_id, message_id)] = message
        return message

    @staticmethod
    def _document_obj(stored: StoredFile) -> JSONDict:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_size": len(stored.content),
        }

    @staticmethod
    def _apply_common(message: JSONDict, params: JSONDict) -> None:
        markup = _inline(params.get("reply_markup"))
        if markup:
            message["reply_markup"] = markup
        if isinstance(params.get("entities"), list):
            message["entities"] = params["entities"]

    def _find_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._require(params, "chat_id")
        message_id = int(self._require(params, "message_id"))
        message = self._messages.get((chat_id, message_id))
        if message is None:
            if self.strict:
                raise _TelegramError(400, "Bad Request: message to edit not found")
            message = {
                "message_id": message_id,
                "from": dict(self.bot_user),
                "chat": self.chat(chat_id),
                "date": int(time.time()),
                "text": "",
            }
            self._messages[(chat_id, message_id)] = message
        return message

    def _known_callback(self, query_id: str) -> bool:
        return query_id in self._issued_callbacks


def _decode_value(key: str, value: str) -> Any:
    """Decode one form value the way PTB encoded it (json.dumps for non-str values)."""
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _inline(markup: Any) -> JSONDict | None:
    """The markup Telegram echoes back in a Message: only inline keyboards."""
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return markup
    return None
