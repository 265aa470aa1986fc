"""Telegram (python-telegram-bot 22): polling for development, a webhook for production.

Every private-chat text (commands included), document and button press becomes an ``Incoming``
for the conversation core; replies come back through ``send``/``edit``. In webhook mode the
Application runs without an Updater and the HTTP server's route hands each ``Update`` to
``process_webhook``, which puts it on the Application's update queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters
from telegram.helpers import escape_markdown

from bot import texts
from bot.channels.base import Channel, PermanentSendError, RateLimited, SendError, StartupError
from bot.messages import Attachment, Incoming, Reply

if TYPE_CHECKING:
    from bot.conversation import Conversation

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
_MD_TOKENS = re.compile(
    r"\*\*(?P<bold>[^*\n]+?)\*\*|`(?P<code>[^`\n]+)`|\[(?P<label>[^\]\n]+)\]\((?P<url>https?://[^)\s]+)\)"
    r"|^#{1,6}[ \t]+(?P<heading>[^\n]+)$",
    re.MULTILINE,
)


def markdown_v2(text: str) -> str:
    """Our light Markdown (``**bold**``, `` `code` ``, ``[label](url)``, ``# heading``) as Telegram
    MarkdownV2, with every other special character escaped so the API never rejects it."""
    out: list[str] = []
    pos = 0
    for m in _MD_TOKENS.finditer(text):
        out.append(escape_markdown(text[pos:m.start()], version=2))
        if m["bold"] is not None or m["heading"] is not None:
            out.append("*" + escape_markdown(m["bold"] or m["heading"], version=2) + "*")
        elif m["code"] is not None:
            out.append("`" + escape_markdown(m["code"], version=2, entity_type="code") + "`")
        else:
            out.append("[" + escape_markdown(m["label"], version=2) + "]("
                       + escape_markdown(m["url"], version=2, entity_type="text_link") + ")")
        pos = m.end()
    out.append(escape_markdown(text[pos:], version=2))
    return "".join(out)


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.payload) for b in row]
                                 for row in reply.buttons])


def _seconds(value: int | float | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def send_error(exc: TelegramError) -> SendError:
    """Map PTB's exceptions to the delivery layer's: what to wait out, retry or give up on."""
    if isinstance(exc, RetryAfter):
        with warnings.catch_warnings():  # PTB warns about the int/timedelta transition
            warnings.simplefilter("ignore")
            retry_after = _seconds(exc.retry_after)
        return RateLimited(f"telegram: retry after {retry_after}s", retry_after=retry_after)
    if isinstance(exc, Forbidden | BadRequest | InvalidToken | ChatMigrated):
        return PermanentSendError(f"telegram: {exc.message}")
    if isinstance(exc, NetworkError):
        return SendError(f"telegram: {exc.message}")
    return PermanentSendError(f"telegram: {exc}")


class TelegramChannel(Channel):
    name = "telegram"
    max_text = 4096

    def __init__(self, conversation: Conversation, token: str, *, base_url: str, base_file_url: str,
                 webhook_secret: str | None = None, webhook_url: str | None = None,
                 max_upload_bytes: int = 20 * 1024 * 1024, concurrency: int = 256, connections: int = 16,
                 poll_timeout: int = 10):
        self.conversation = conversation
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.max_upload_bytes = max_upload_bytes
        self.poll_timeout = poll_timeout
        builder = (Application.builder().token(token).base_url(base_url).base_file_url(base_file_url)
                   .concurrent_updates(concurrency).connection_pool_size(connections)
                   .pool_timeout(30).get_updates_connection_pool_size(2).job_queue(None))
        if webhook_secret:
            builder = builder.updater(None)
        self.application = builder.build()
        self.application.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT, self._on_text))
        self.application.add_handler(
            MessageHandler(filters.ChatType.PRIVATE & filters.Document.ALL, self._on_document))
        self.application.add_handler(CallbackQueryHandler(self._on_button))
        self.application.add_handler(MessageHandler(
            filters.ChatType.PRIVATE & ~filters.TEXT & ~filters.Document.ALL & ~filters.StatusUpdate.ALL,
            self._on_other))
        self.application.add_error_handler(self._on_error)
        # at most as many requests in flight as the HTTP pool has connections: httpcore scans its
        # whole queue on every request, so a long queue inside it costs quadratic CPU time
        self._slots = asyncio.Semaphore(connections)
        self._started = False

    @property
    def mode(self) -> str:
        return "webhook" if self.webhook_secret else "polling"

    # lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.application.initialize()  # getMe: proves the token
        except InvalidToken as exc:
            raise StartupError(f"Telegram refused SALESBOT_TELEGRAM_TOKEN ({exc.message})") from exc
        except NetworkError as exc:
            raise StartupError(
                f"Telegram API unreachable at SALESBOT_TELEGRAM_BASE_URL ({exc.message})") from exc
        await self.application.start()
        if self.webhook_secret:
            if self.webhook_url:
                await self.application.bot.set_webhook(self.webhook_url, secret_token=self.webhook_secret,
                                                       allowed_updates=ALLOWED_UPDATES)
            else:
                log.warning("webhook mode without SALESBOT_PUBLIC_URL: register the webhook yourself",
                            extra={"channel": self.name})
        else:
            assert self.application.updater is not None
            await self.application.updater.start_polling(timeout=self.poll_timeout,
                                                         allowed_updates=ALLOWED_UPDATES)
        self._started = True
        log.info("telegram started", extra={"channel": self.name, "mode": self.mode,
                                            "bot": self.application.bot.username})

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        await self.application.stop()
        await self.application.shutdown()

    async def process_webhook(self, payload: dict[str, Any]) -> None:
        """The HTTP route's half of webhook mode: queue one update for the Application."""
        update = Update.de_json(payload, self.application.bot)
        await self.application.update_queue.put(update)

    # incoming -------------------------------------------------------------------------------
    @staticmethod
    def _ref(update: Update) -> dict[str, Any]:
        message = update.effective_message
        return {"chat_id": update.effective_chat.id if update.effective_chat else None,
                "message_id": message.message_id if message else None}

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_user is not None and update.effective_message is not None
        account = str(update.effective_user.id)
        async with self.conversation.in_order(self.name, account):
            if await self.conversation.seen_before(self.name, f"telegram:upd:{update.update_id}"):
                return
            text = update.effective_message.text or ""
            await self.conversation.receive(Incoming(self.name, account, text=text, ref=self._ref(update)))

    async def _on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_user is not None
        async with self.conversation.in_order(self.name, str(update.effective_user.id)):
            if await self.conversation.seen_before(self.name, f"telegram:upd:{update.update_id}"):
                return
            await self._document(update)

    async def _document(self, update: Update) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and message.document is not None and user is not None
        account, doc = str(user.id), message.document
        name = doc.file_name or "document"
        content = b""
        if self.conversation.may_upload(self.name, account):  # never download from anyone else
            if doc.file_size and doc.file_size > self.max_upload_bytes:
                await self.conversation.delivery.send(self.name, account, Reply(
                    texts.FILE_TOO_LARGE.format(limit=self.max_upload_bytes // (1024 * 1024))))
                return
            try:
                tg_file = await doc.get_file()
                content = bytes(await tg_file.download_as_bytearray())
            except TelegramError as exc:
                log.warning("document download failed", extra={"channel": self.name, "error": str(exc)[:200]})
                await self.conversation.delivery.send(self.name, account, Reply(texts.FILE_DOWNLOAD_FAILED))
                return
        await self.conversation.receive(Incoming(
            self.name, account, text=message.caption or "", ref=self._ref(update),
            file=Attachment(name, content, doc.mime_type)))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        with contextlib.suppress(TelegramError):  # always answer: stops the spinner on the button
            async with self._slots:
                await query.answer()
        message = query.message
        press = f"telegram:press:{query.from_user.id}:{getattr(message, 'message_id', '')}:{query.data}"
        async with self.conversation.in_order(self.name, str(query.from_user.id)):
            if await self.conversation.seen_before(self.name, f"telegram:upd:{update.update_id}", press):
                return
            await self.conversation.receive(Incoming(
                self.name, str(query.from_user.id), button=query.data or "",
                ref={"chat_id": message.chat.id if message else None,
                     "message_id": message.message_id if message else None,
                     "callback_query_id": query.id}))

    async def _on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_user is None:
            return
        account = str(update.effective_user.id)
        async with self.conversation.in_order(self.name, account):
            if not await self.conversation.seen_before(self.name, f"telegram:upd:{update.update_id}"):
                await self.conversation.unsupported(self.name, account)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed", exc_info=context.error, extra={"channel": self.name})

    # outgoing -------------------------------------------------------------------------------
    async def send(self, account: str, reply: Reply) -> None:
        bot = self.application.bot
        chat_id = int(account) if account.lstrip("-").isdigit() else account
        try:
            async with self._slots:
                if reply.text:
                    await bot.send_message(chat_id, markdown_v2(reply.text) if reply.markdown else reply.text,
                                           parse_mode=ParseMode.MARKDOWN_V2 if reply.markdown else None,
                                           reply_markup=keyboard(reply))
                for attachment in reply.files:
                    await bot.send_document(chat_id, document=attachment.content, filename=attachment.name)
        except TelegramError as exc:
            raise send_error(exc) from exc

    async def edit(self, pressed: Incoming, reply: Reply) -> bool:
        chat_id, message_id = pressed.ref.get("chat_id"), pressed.ref.get("message_id")
        if chat_id is None or message_id is None:
            return False
        try:
            async with self._slots:
                await self.application.bot.edit_message_text(
                    markdown_v2(reply.text) if reply.markdown else reply.text, chat_id=chat_id,
                    message_id=message_id, reply_markup=keyboard(reply),
                    parse_mode=ParseMode.MARKDOWN_V2 if reply.markdown else None)
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return True
            log.warning("card edit refused, sending instead", extra={"channel": self.name,
                                                                      "error": exc.message[:200]})
            return False
        except TelegramError as exc:
            raise send_error(exc) from exc
        return True

    def after_edit(self, reply: Reply) -> Reply | None:
        return Reply("", files=reply.files) if reply.files else None


