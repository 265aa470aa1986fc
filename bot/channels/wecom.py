"""WeCom (企业微信) self-built app through wechatpy: callback in, ``message/send`` out.

Receiving: WeCom calls ``GET /wecom/callback`` once to verify the URL and ``POST``s every message
encrypted. ``verify`` and ``accept`` check the signature and corp id, decrypt, and (``accept``)
drop retries by ``MsgId`` or, for events, ``FromUserName+CreateTime+Event+EventKey``; the work
then goes on in a background task so the route answers with an empty body at once (WeCom retries
a callback it has no answer for within 5 s). wechatpy has no class for ``MsgType=file`` nor for
``template_card_event``, so fields are read from the raw XML (``xmltodict``), all as strings.

Sending: wechatpy's synchronous client, run in worker threads (``asyncio.to_thread``) so it never
blocks the event loop. Texts and markdown through ``message/send``; replies with buttons as
``button_interaction`` template cards; after a click the card's buttons are replaced by a label
with ``message/update_template_card`` and the click event's ``ResponseCode``. The access token is
cached by wechatpy and refreshed on expiry; ``WeComClient`` fetches it from the configured base URL.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import urllib.parse
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import requests
import xmltodict
from wechatpy.enterprise import WeChatClient
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import APILimitedException, InvalidSignatureException, WeChatClientException

from bot import texts
from bot.channels.base import (
    Channel,
    PermanentSendError,
    RateLimited,
    SendError,
    StartupError,
    utf8_len,
)
from bot.messages import Attachment, Incoming, Reply

if TYPE_CHECKING:
    from bot.conversation import Conversation

log = logging.getLogger(__name__)

MAX_CALLBACK_BYTES = 64 * 1024  # a callback envelope is a few KB; anything bigger is refused
TITLE_CHARS, SUBTITLE_CHARS, LABEL_CHARS, MAX_BUTTONS = 36, 160, 20, 6
TRANSIENT_ERRCODES = {-1, None}  # "system busy", HTTP-level failure


class CallbackRejected(Exception):
    """A callback that must not be processed: ``status`` is the HTTP answer (403 or 400)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WeComClient(WeChatClient):
    """wechatpy's client with the token fetched from ``API_BASE_URL`` (wechatpy hard-codes the host)."""

    def __init__(self, corp_id: str, secret: str, api_base_url: str, timeout: float = 10):
        super().__init__(corp_id, secret, timeout=timeout)
        self.API_BASE_URL = api_base_url if api_base_url.endswith("/") else api_base_url + "/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(url=self.API_BASE_URL + "gettoken",
                                        params={"corpid": self.corp_id, "corpsecret": self.secret})


def send_error(exc: Exception) -> SendError:
    if isinstance(exc, APILimitedException):
        return RateLimited(f"wecom: rate limited ({exc.errcode})")
    if isinstance(exc, WeChatClientException):
        if exc.errcode in TRANSIENT_ERRCODES:
            return SendError(f"wecom: {exc.errcode} {exc.errmsg}")
        return PermanentSendError(f"wecom: {exc.errcode} {exc.errmsg}")
    if isinstance(exc, requests.RequestException):
        return SendError(f"wecom: {type(exc).__name__}")
    return PermanentSendError(f"wecom: {type(exc).__name__}: {exc}")


def event_keys(fields: Mapping[str, Any]) -> list[str]:
    """Dedupe keys of one callback: the retry key, plus one per card button press."""
    if fields.get("MsgId"):
        return [f"wecom:msg:{fields['MsgId']}"]
    user = fields.get("FromUserName", "")
    parts = [user, *(str(fields.get(k) or "") for k in ("CreateTime", "Event", "EventKey"))]
    keys = ["wecom:evt:" + ":".join(parts)]
    if fields.get("Event") == "template_card_event" and fields.get("TaskId"):
        keys.append(f"wecom:press:{user}:{fields['TaskId']}:{fields.get('EventKey', '')}")
    return keys


def _filename(headers: Mapping[str, str], fallback: str) -> str:
    disposition = headers.get("Content-Disposition", "")
    star = re.search(r"filename\*=UTF-8''([^;]+)", disposition, re.IGNORECASE)
    if star:
        return urllib.parse.unquote(star.group(1).strip().strip('"'))
    plain = re.search(r'filename="?([^";]+)"?', disposition, re.IGNORECASE)
    return fallback or (plain.group(1) if plain else "file")


class WeComChannel(Channel):
    name = "wecom"
    max_text = 2048  # bytes of a text message's content (markdown allows 4096)
    measure = staticmethod(utf8_len)

    def __init__(self, conversation: Conversation, *, corp_id: str, secret: str, agent_id: int,
                 token: str, aes_key: str, api_base_url: str, max_upload_bytes: int = 20 * 1024 * 1024):
        self.conversation = conversation
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.max_upload_bytes = max_upload_bytes
        self.crypto = WeChatCrypto(token, aes_key, corp_id)
        self.client = WeComClient(corp_id, secret, api_base_url)
        self._tasks: set[asyncio.Task[None]] = set()

    # lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.client.fetch_access_token)
        except WeChatClientException as exc:
            if exc.errcode == 40013:
                raise StartupError("WeCom refused SALESBOT_WECOM_CORP_ID (errcode 40013)") from exc
            if exc.errcode in (40001, 40091):
                raise StartupError(f"WeCom refused SALESBOT_WECOM_SECRET (errcode {exc.errcode})") from exc
            log.warning("wecom token check failed; will retry on first send",
                        extra={"channel": self.name, "errcode": exc.errcode})
        except requests.RequestException as exc:
            log.warning("wecom API unreachable at start; will retry on first send",
                        extra={"channel": self.name, "error": type(exc).__name__})
        log.info("wecom started", extra={"channel": self.name, "agent_id": self.agent_id})

    async def stop(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=10)
            for task in pending:
                task.cancel()
        self._tasks.clear()

    # callbacks ------------------------------------------------------------------------------
    def verify(self, params: Mapping[str, str]) -> str:
        """URL verification (GET): the decrypted ``echostr`` is the whole answer."""
        try:
            echo = self.crypto.check_signature(params["msg_signature"], params["timestamp"],
                                               params["nonce"], params["echostr"])
        except (InvalidSignatureException, InvalidCorpIdException) as exc:
            raise CallbackRejected(403, type(exc).__name__) from exc
        except Exception as exc:
            raise CallbackRejected(400, type(exc).__name__) from exc
        return echo.decode() if isinstance(echo, bytes) else str(echo)

    def accept(self, params: Mapping[str, str], body: bytes) -> None:
        """Check and decrypt one callback; de-duplicate and handle it in the background."""
        if len(body) > MAX_CALLBACK_BYTES:
            raise CallbackRejected(400, "body too large")
        try:
            plain = self.crypto.decrypt_message(body, params["msg_signature"], params["timestamp"],
                                                params["nonce"])
        except (InvalidSignatureException, InvalidCorpIdException) as exc:
            raise CallbackRejected(403, type(exc).__name__) from exc
        except Exception as exc:  # missing parameters, malformed XML or ciphertext
            raise CallbackRejected(400, type(exc).__name__) from exc
        try:
            fields = xmltodict.parse(plain)["xml"]
            if not isinstance(fields, dict) or not fields.get("FromUserName"):
                raise ValueError("no FromUserName")
        except Exception as exc:
            raise CallbackRejected(400, "malformed message XML") from exc
        self._spawn(self._process(fields))

    async def _process(self, fields: dict[str, Any]) -> None:
        try:
            async with self.conversation.in_order(self.name, str(fields["FromUserName"])):
                if await self.conversation.seen_before(self.name, *event_keys(fields)):
                    return
                msg = await self._incoming(fields)
                if msg is not None:
                    await self.conversation.receive(msg)
        except Exception:
            log.exception("wecom callback failed", extra={"channel": self.name})

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _incoming(self, fields: dict[str, Any]) -> Incoming | None:
        account = str(fields["FromUserName"])
        kind, event = fields.get("MsgType"), fields.get("Event")
        if kind == "text":
            return Incoming(self.name, account, text=str(fields.get("Content") or ""),
                            ref={"msg_id": fields.get("MsgId")})
        if kind == "file":
            return await self._file(account, fields)
        if kind == "event" and event == "template_card_event":
            return Incoming(self.name, account, button=str(fields.get("EventKey") or ""),
                            ref={"task_id": fields.get("TaskId"), "response_code": fields.get("ResponseCode"),
                                 "card_type": fields.get("CardType")})
        if kind == "event":  # enter_agent, subscribe ...: nothing to answer
            return None
        await self.conversation.unsupported(self.name, account)
        return None

    async def _file(self, account: str, fields: dict[str, Any]) -> Incoming | None:
        media_id = str(fields.get("MediaId") or "")
        name = str(fields.get("FileName") or fields.get("Title") or "")
        content, mime = b"", None
        if self.conversation.may_upload(self.name, account):  # never download from anyone else
            try:
                res = await asyncio.to_thread(self.client.get, "media/get", params={"media_id": media_id})
            except (WeChatClientException, requests.RequestException) as exc:
                log.warning("wecom media download failed", extra={"channel": self.name,
                                                                   "error": type(exc).__name__})
                await self.conversation.delivery.send(self.name, account, Reply(texts.FILE_DOWNLOAD_FAILED))
                return None
            if not isinstance(res, requests.Response):
                await self.conversation.delivery.send(self.name, account, Reply(texts.FILE_DOWNLOAD_FAILED))
                return None
            content = res.content
            if len(content) > self.max_upload_bytes:
                await self.conversation.delivery.send(self.name, account, Reply(
                    texts.FILE_TOO_LARGE.format(limit=self.max_upload_bytes // (1024 * 1024))))
                return None
            name = _filename(res.headers, name)
            mime = res.headers.get("Content-Type", "").split(";")[0] or None
        return Incoming(self.name, account, file=Attachment(name or "file", content, mime),
                        ref={"msg_id": fields.get("MsgId"), "media_id": media_id})

    # outgoing -------------------------------------------------------------------------------
    async def send(self, account: str, reply: Reply) -> None:
        try:
            await asyncio.to_thread(self._send_sync, account, reply)
        except SendError:
            raise
        except Exception as exc:
            raise send_error(exc) from exc

    def _send_sync(self, account: str, reply: Reply) -> None:
        message = self.client.message
        if reply.buttons:
            card, complete = self.card(reply)
            if not complete:  # the card shows a summary: send the whole text first
                self._check(message.send_text(self.agent_id, account, reply.text), account)
            self._check(message.send(self.agent_id, account, msg=card), account)
        elif reply.text and reply.markdown:
            self._check(message.send_markdown(self.agent_id, account, reply.text), account)
        elif reply.text:
            self._check(message.send_text(self.agent_id, account, reply.text), account)
        for attachment in reply.files:
            uploaded = self.client.post("media/upload", params={"type": "file"},
                                        files={"media": (attachment.name, attachment.content,
                                                         attachment.mime_type or "application/octet-stream")})
            self._check(message.send_file(self.agent_id, account, uploaded["media_id"]), account)

    @staticmethod
    def _check(result: Any, account: str) -> None:
        invalid = str((result or {}).get("invaliduser") or "").split("|")
        if account in invalid:
            raise PermanentSendError(f"wecom: invalid user {account}")

    def card(self, reply: Reply) -> tuple[dict[str, Any], bool]:
        """A ``button_interaction`` template card; False when the text had to be shortened."""
        first, _, rest = reply.text.strip().partition("\n")
        title, subtitle = first[:TITLE_CHARS], rest.strip()[:SUBTITLE_CHARS]
        complete = title == first and subtitle == rest.strip()
        buttons = [b for row in reply.buttons for b in row][:MAX_BUTTONS]
        card: dict[str, Any] = {
            "card_type": "button_interaction",
            "main_title": {"title": title or texts.CARD_DONE},
            "task_id": f"t{secrets.token_hex(12)}",
            "button_list": [{"text": b.text[:10], "style": 1 if i == 0 else 2, "key": b.payload}
                            for i, b in enumerate(buttons)],
        }
        if subtitle:
            card["sub_title_text"] = subtitle
        return {"msgtype": "template_card", "template_card": card}, complete

    async def edit(self, pressed: Incoming, reply: Reply) -> bool:
        code = pressed.ref.get("response_code")
        if not code:
            return False
        body = {"userids": [pressed.account], "agentid": self.agent_id, "response_code": code,
                "button": {"replace_name": _label(reply)}}
        try:
            await asyncio.to_thread(self.client.post, "message/update_template_card", data=body)
        except Exception as exc:
            raise send_error(exc) from exc
        return True

    def after_edit(self, reply: Reply) -> Reply | None:
        """The label holds one short line: anything more follows as a message."""
        if reply.text.strip() != _label(reply) or reply.buttons or reply.files:
            return reply
        return None


def _label(reply: Reply) -> str:
    return (reply.text.strip().split("\n", 1)[0] or texts.CARD_DONE)[:LABEL_CHARS]
