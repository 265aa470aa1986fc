"""A fake WeCom (企业微信) server API, as ``wechatpy.enterprise.WeChatClient`` calls it.

Point the client at it with ``client.API_BASE_URL = wc.api_base_url`` (and a
``fetch_access_token`` that uses ``API_BASE_URL + "gettoken"``, see CHANNELS.md).

Routes under ``/cgi-bin/``: ``GET gettoken``, ``POST message/send``,
``POST message/update_template_card``, ``GET media/get``, ``POST media/upload``,
``GET user/get``. Every answer is JSON with ``errcode``/``errmsg`` (0/"ok" on success)
except a successful ``media/get``, which returns the bytes.

The module also builds inbound callback requests the way WeCom POSTs them to the app:
:func:`wecom_callback_request` (encrypted body + query), :func:`wecom_verify_request` (URL
verification GET) and XML builders :func:`wecom_text_xml`, :func:`wecom_file_xml`,
:func:`wecom_template_card_event_xml`.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import xmltodict
from aiohttp import web
from wechatpy.enterprise.crypto import WeChatCrypto

from . import FakeHTTPServer

__all__ = [
    "FakeWeComServer",
    "WeComCall",
    "WeComMedia",
    "wecom_callback_request",
    "wecom_file_xml",
    "wecom_template_card_event_xml",
    "wecom_text_xml",
    "wecom_verify_request",
]

JSONDict = dict[str, Any]

DEFAULT_CORP_ID = "wx49f0ab532d5d035a"
DEFAULT_AGENT_ID = 1000002

_DEFAULT_ERRMSG = {
    40001: "invalid credential",
    40007: "invalid media_id",
    40014: "invalid access_token",
    42001: "access_token expired",
    45009: "api freq out of limit",
    60020: "not allow to access from your ip",
    -1: "system busy",
}


class WeComCall(NamedTuple):
    """One request received by the fake: API path (e.g. ``message/send``), query, body.

    ``body`` is the JSON-decoded body (``None`` for GET or undecodable bodies).
    """

    path: str
    query: dict[str, str]
    body: Any


@dataclass(frozen=True)
class WeComMedia:
    """A temporary media file served by ``media/get``."""

    media_id: str
    content: bytes
    filename: str
    content_type: str


@dataclass
class _Failure:
    path: str
    times: int
    errcode: int
    errmsg: str


class _WeComError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


class FakeWeComServer(FakeHTTPServer):
    """Fake WeCom server API for one self-built app.

    Args:
        corp_id: the corp id ``gettoken`` accepts (``corpid``).
        secret: the app secret ``gettoken`` accepts (``corpsecret``).
        agent_id: if given, ``message/send`` and ``update_template_card`` reject another
            ``agentid`` with errcode 40056.
        users: if given (ids, or id -> display name), only these user ids are valid
            recipients; others come back in ``invaliduser`` like the real API, and
            ``user/get`` answers for them.
        token_ttl: ``expires_in`` of issued tokens, in seconds.
    """

    def __init__(
        self,
        corp_id: str = DEFAULT_CORP_ID,
        secret: str = "fake-secret",
        *,
        agent_id: int | None = None,
        users: Iterable[str] | Mapping[str, str] | None = None,
        token_ttl: int = 7200,
    ) -> None:
        super().__init__()
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.token_ttl = token_ttl
        self.users: dict[str, str] | None
        if users is None:
            self.users = None
        elif isinstance(users, Mapping):
            self.users = dict(users)
        else:
            self.users = {u: u for u in users}
        #: Every request, in order, including ones answered with an error.
        self.calls: list[WeComCall] = []
        #: Bodies of accepted ``message/send`` requests, in order.
        self.sent: list[JSONDict] = []
        #: Bodies of accepted ``message/update_template_card`` requests, in order.
        self.card_updates: list[JSONDict] = []
        #: Files received by ``media/upload`` (also served by ``media/get``).
        self.uploads: list[WeComMedia] = []
        #: Requests answered with a non-zero errcode: ``(path, errcode)``.
        self.errors: list[tuple[str, int]] = []
        #: Number of ``gettoken`` requests (successful or not).
        self.token_requests: int = 0
        self.media: dict[str, WeComMedia] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self._failures: list[_Failure] = []
        self._msgids = itertools.count(1)
        self._media_ids = itertools.count(1)

    # == addresses ============================================================================
    @property
    def api_base_url(self) -> str:
        """Value for ``WeChatClient.API_BASE_URL``: ``http://127.0.0.1:PORT/cgi-bin/``."""
        return f"{self.url}/cgi-bin/"

    # == test setup ===========================================================================
    def add_media(
        self,
        media_id: str,
        content: bytes,
        filename: str,
        content_type: str = "application/octet-stream",
    ) -> WeComMedia:
        """Make ``media/get?media_id=...`` serve ``content``."""
        item = WeComMedia(media_id, content, filename, content_type)
        self.media[media_id] = item
        return item

    def expire_tokens(self) -> None:
        """Expire every issued token: the next API call answers errcode 42001."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def revoke_tokens(self) -> None:
        """Forget every issued token: the next API call answers errcode 40014."""
        self._tokens.clear()

    @property
    def valid_tokens(self) -> list[str]:
        """Issued tokens that are still valid."""
        now = time.time()
        return [t for t, exp in self._tokens.items() if exp > now]

    def fail_next(self, path: str, errcode: int = 45009, errmsg: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` (e.g. ``"message/send"``) with
        ``errcode``. 45009 makes wechatpy raise ``APILimitedException``; 40014/42001 make it
        refresh the token and retry once; anything else raises ``WeChatClientException``."""
        message = errmsg or _DEFAULT_ERRMSG.get(errcode, f"injected error {errcode}")
        self._failures.append(_Failure(path.strip("/"), times, errcode, message))

    # == inspection ============================================================================
    def called(self, path: str) -> int:
        """How many requests ``path`` received (errors included)."""
        path = path.strip("/")
        return sum(1 for c in self.calls if c.path == path)

    def sent_to(self, userid: str) -> list[JSONDict]:
        """Accepted ``message/send`` bodies addressed to ``userid`` (or ``@all``)."""
        result = []
        for body in self.sent:
            users = str(body.get("touser") or "").split("|")
            if userid in users or "@all" in users:
                result.append(body)
        return result

    def sent_texts(self, userid: str | None = None) -> list[str]:
        """``text.content`` (or ``markdown.content``) of accepted messages, in order."""
        bodies = self.sent if userid is None else self.sent_to(userid)
        texts = []
        for body in bodies:
            kind = body.get("msgtype")
            if kind in ("text", "markdown"):
                texts.append(str(body.get(kind, {}).get("content", "")))
        return texts

    def sent_cards(self, userid: str | None = None) -> list[JSONDict]:
        """``template_card`` payloads of accepted messages, in order."""
        bodies = self.sent if userid is None else self.sent_to(userid)
        return [b["template_card"] for b in bodies if b.get("msgtype") == "template_card"]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> list[WeComCall]:
        """Wait until ``path`` received ``count`` requests; returns those calls.

        Raises ``TimeoutError`` listing the calls seen so far.
        """
        await self._poll_until(
            lambda: self.called(path) >= count, timeout, lambda: self._timeout_msg(path, count)
        )
        return [c for c in self.calls if c.path == path.strip("/")]

    def wait_for_sync(self, path: str, count: int = 1, timeout: float = 5.0) -> list[WeComCall]:
        """Blocking :meth:`wait_for`, for tests using :meth:`run_in_thread`."""
        self._poll_until_sync(
            lambda: self.called(path) >= count, timeout, lambda: self._timeout_msg(path, count)
        )
        return [c for c in self.calls if c.path == path.strip("/")]

    def _timeout_msg(self, path: str, count: int) -> str:
        seen = [c.path for c in self.calls]
        return f"{path} called {self.called(path)}/{count} times; calls so far: {seen}"

    def reset_calls(self) -> None:
        """Forget recorded requests, messages and card updates (not tokens or media)."""
        self.calls.clear()
        self.sent.clear()
        self.card_updates.clear()
        self.errors.clear()
        self.token_requests = 0

    # == server ================================================================================
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/cgi-bin/{path:.+}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        query = dict(request.query)
        upload: WeComMedia | None = None
        body: Any = None
        if path == "media/upload":
            upload = await self._read_upload(request)
        elif request.can_read_body:
            # wechatpy posts JSON without a Content-Type header: decode regardless.
            raw = await request.read()
            try:
                body = json.loads(raw.decode("utf-8")) if raw else None
            except ValueError:
                body = None
        self.calls.append(WeComCall(path, query, body))
        try:
            self._check_injected(path)
            if path == "gettoken":
                return self._json(self._gettoken(query))
            handler = {
                "message/send": self._message_send,
                "message/update_template_card": self._update_template_card,
                "media/get": self._media_get,
                "user/get": self._user_get,
            }.get(path)
            if handler is None and path != "media/upload":
                return self._json({"errcode": -1, "errmsg": f"fake: unknown api {path}"}, 404)
            self._check_token(query)
            if path == "media/upload":
                return self._json(self._media_upload(query, upload))
            assert handler is not None
            result = handler(query, body)
            if isinstance(result, web.StreamResponse):
                return result
            return self._json(result)
        except _WeComError as exc:
            self.errors.append((path, exc.errcode))
            return self._json({"errcode": exc.errcode, "errmsg": exc.errmsg})

    @staticmethod
    async def _read_upload(request: web.Request) -> WeComMedia | None:
        if not request.content_type.startswith("multipart/"):
            return None
        form = await request.post()
        field = form.get("media")
        if not isinstance(field, web.FileField):
            return None
        return WeComMedia("", field.file.read(), field.filename, field.content_type)

    def _check_injected(self, path: str) -> None:
        for failure in self._failures:
            if failure.path == path:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise _WeComError(failure.errcode, failure.errmsg)

    def _check_token(self, query: Mapping[str, str]) -> None:
        token = query.get("access_token")
        if not token:
            raise _WeComError(41001, "access_token missing")
        expiry = self._tokens.get(token)
        if expiry is None:
            raise _WeComError(40014, "invalid access_token")
        if expiry <= time.time():
            raise _WeComError(42001, "access_token expired")

    def _check_agent(self, body: JSONDict) -> None:
        if self.agent_id is None:
            return
        try:
            agent = int(body.get("agentid"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            agent = None
        if agent != self.agent_id:
            raise _WeComError(40056, "invalid agentid")

    # == API implementations ====================================================================
    def _gettoken(self, query: Mapping[str, str]) -> JSONDict:
        self.token_requests += 1
        if query.get("corpid") != self.corp_id:
            raise _WeComError(40013, "invalid corpid")
        if query.get("corpsecret") != self.secret:
            raise _WeComError(40001, "invalid secret")
        token = secrets.token_urlsafe(48)
        self._tokens[token] = time.time() + self.token_ttl
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl}

    def _message_send(self, query: Mapping[str, str], body: Any) -> JSONDict:
        if not isinstance(body, dict):
            raise _WeComError(47001, "data format error")
        msgtype = body.get("msgtype")
        if not msgtype or not isinstance(body.get(msgtype), dict):
            raise _WeComError(40008, "invalid message type")
        self._check_agent(body)
        if msgtype in ("text", "markdown") and not body[msgtype].get("content"):
            raise _WeComError(44004, "empty content")
        if msgtype == "template_card" and not body[msgtype].get("card_type"):
            raise _WeComError(40058, "invalid parameter: template_card.card_type")
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        if not users and not body.get("toparty") and not body.get("totag"):
            raise _WeComError(40035, "invalid parameter: touser, toparty, totag all empty")
        invalid = []
        if self.users is not None and "@all" not in users:
            invalid = [u for u in users if u not in self.users]
            if invalid and len(invalid) == len(users) and not body.get("toparty"):
                raise _WeComError(81013, "user & party & tag all invalid")
        self.sent.append(body)
        result: JSONDict = {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(invalid),
            "invalidparty": "",
            "invalidtag": "",
            "unlicenseduser": "",
            "msgid": f"fake-msgid-{next(self._msgids)}",
        }
        if msgtype == "template_card":
            result["response_code"] = secrets.token_urlsafe(24)
        return result

    def _update_template_card(self, query: Mapping[str, str], body: Any) -> JSONDict:
        if not isinstance(body, dict):
            raise _WeComError(47001, "data format error")
        self._check_agent(body)
        if not body.get("response_code"):
            raise _WeComError(40058, "invalid parameter: response_code")
        if not (body.get("userids") or body.get("partyids") or body.get("tagids") or body.get("atall")):
            raise _WeComError(40058, "invalid parameter: userids, partyids, tagids all empty")
        if not (body.get("button") or body.get("template_card")):
            raise _WeComError(40058, "invalid parameter: button or template_card required")
        self.card_updates.append(body)
        return {"errcode": 0, "errmsg": "ok", "invaliduser": []}

    def _media_get(self, query: Mapping[str, str], body: Any) -> web.Response:
        item = self.media.get(query.get("media_id", ""))
        if item is None:
            raise _WeComError(40007, "invalid media_id")
        return web.Response(
            body=item.content,
            headers={
                "Content-Type": item.content_type,
                "Content-Disposition": _content_disposition(item.filename),
                "Cache-Control": "no-cache, must-revalidate",
            },
        )

    def _media_upload(self, query: Mapping[str, str], upload: WeComMedia | None) -> JSONDict:
        media_type = query.get("type", "")
        if media_type not in ("image", "voice", "video", "file"):
            raise _WeComError(40004, "invalid media type")
        if upload is None or not upload.content:
            raise _WeComError(41005, "media data missing")
        media_id = f"fake-media-{next(self._media_ids)}"
        item = WeComMedia(media_id, upload.content, upload.filename, upload.content_type)
        self.media[media_id] = item
        self.uploads.append(item)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "type": media_type,
            "media_id": media_id,
            "created_at": str(int(time.time())),
        }

    def _user_get(self, query: Mapping[str, str], body: Any) -> JSONDict:
        userid = query.get("userid", "")
        if self.users is not None and userid not in self.users:
            raise _WeComError(60111, "userid not found")
        name = (self.users or {}).get(userid, userid)
        return {"errcode": 0, "errmsg": "ok", "userid": userid, "name": name, "status": 1}


def _content_disposition(filename: str) -> str:
    """``attachment; filename="..."`` plus an RFC 5987 ``filename*`` for non-ASCII names."""
    try:
        filename.encode("ascii")
    except UnicodeEncodeError:
        fallback = filename.encode("ascii", "replace").decode().replace("?", "_")
        quoted = urllib.parse.quote(filename, safe="")
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"
    return f'attachment; filename="{filename}"'


# == inbound callbacks (what WeCom POSTs to our app) =================================================


def _nonce() -> str:
    return str(secrets.randbelow(9 * 10**9) + 10**9)


def wecom_callback_request(
    crypto_token: str,
    aes_key: str,
    corp_id: str,
    xml_plaintext: str,
    *,
    timestamp: str | int | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Encrypt ``xml_plaintext`` like WeCom does for a callback POST.

    Returns ``(query_params, body)``: ``query_params`` holds ``msg_signature``,
    ``timestamp`` and ``nonce``; ``body`` is the XML envelope with ``ToUserName``,
    ``Encrypt`` and ``AgentID``. Decrypt with
    ``WeChatCrypto(crypto_token, aes_key, corp_id).decrypt_message(body, **params)``-style
    arguments (``msg, signature, timestamp, nonce``).
    """
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or _nonce()
    crypto = WeChatCrypto(crypto_token, aes_key, corp_id)
    envelope = xmltodict.parse(crypto.encrypt_message(xml_plaintext, nonce, ts))["xml"]
    agent_id = ""
    try:
        agent_id = str(xmltodict.parse(xml_plaintext)["xml"].get("AgentID") or "")
    except Exception:  # the plaintext need not be XML
        agent_id = ""
    body = (
        "<xml>"
        f"<ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<Encrypt>{_cdata(envelope['Encrypt'])}</Encrypt>"
        f"<AgentID>{_cdata(agent_id)}</AgentID>"
        "</xml>"
    )
    params = {"msg_signature": envelope["MsgSignature"], "timestamp": ts, "nonce": nonce}
    return params, body.encode("utf-8")


def wecom_verify_request(
    crypto_token: str,
    aes_key: str,
    corp_id: str,
    echo_plaintext: str | None = None,
    *,
    timestamp: str | int | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], str]:
    """Build the URL-verification GET WeCom sends when the callback URL is saved.

    Returns ``(query_params, expected_plaintext)``; ``query_params`` has
    ``msg_signature``, ``timestamp``, ``nonce`` and ``echostr`` (unencoded: let the HTTP
    client percent-encode it). The app must answer with ``expected_plaintext`` as body.
    """
    plain = echo_plaintext or str(secrets.randbelow(10**19))
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or _nonce()
    crypto = WeChatCrypto(crypto_token, aes_key, corp_id)
    envelope = xmltodict.parse(crypto.encrypt_message(plain, nonce, ts))["xml"]
    params = {
        "msg_signature": envelope["MsgSignature"],
        "timestamp": ts,
        "nonce": nonce,
        "echostr": envelope["Encrypt"],
    }
    return params, plain


def _cdata(value: object) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(fields: Mapping[str, object]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value) if isinstance(value, int) else _cdata(value)
        parts.append(f"<{key}>{text}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"


_msg_ids = itertools.count(7_400_000_000_000_000_001)


def wecom_text_xml(
    from_user: str,
    content: str,
    *,
    corp_id: str = DEFAULT_CORP_ID,
    agent_id: int = DEFAULT_AGENT_ID,
    msg_id: int | str | None = None,
    create_time: int | None = None,
) -> str:
    """Plaintext XML of a text message from ``from_user`` to the app."""
    return _xml(
        {
            "ToUserName": corp_id,
            "FromUserName": from_user,
            "CreateTime": create_time if create_time is not None else int(time.time()),
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id if msg_id is not None else next(_msg_ids),
            "AgentID": agent_id,
        }
    )


def wecom_file_xml(
    from_user: str,
    media_id: str,
    filename: str,
    *,
    corp_id: str = DEFAULT_CORP_ID,
    agent_id: int = DEFAULT_AGENT_ID,
    msg_id: int | str | None = None,
    create_time: int | None = None,
    name_field: str = "Title",
) -> str:
    """Plaintext XML of a file message (``MsgType=file``, ``MediaId``, file name in
    ``name_field``: ``Title`` by default; the real field name is unverified)."""
    return _xml(
        {
            "ToUserName": corp_id,
            "FromUserName": from_user,
            "CreateTime": create_time if create_time is not None else int(time.time()),
            "MsgType": "file",
            "MediaId": media_id,
            name_field: filename,
            "MsgId": msg_id if msg_id is not None else next(_msg_ids),
            "AgentID": agent_id,
        }
    )


def wecom_template_card_event_xml(
    from_user: str,
    event_key: str,
    task_id: str,
    *,
    response_code: str | None = None,
    card_type: str = "button_interaction",
    corp_id: str = DEFAULT_CORP_ID,
    agent_id: int = DEFAULT_AGENT_ID,
    create_time: int | None = None,
) -> str:
    """Plaintext XML of a button press on a template card (``Event=template_card_event``).

    ``response_code`` defaults to a fresh random code (use it for update_template_card).
    """
    return _xml(
        {
            "ToUserName": corp_id,
            "FromUserName": from_user,
            "CreateTime": create_time if create_time is not None else int(time.time()),
            "MsgType": "event",
            "Event": "template_card_event",
            "EventKey": event_key,
            "TaskId": task_id,
            "CardType": card_type,
            "ResponseCode": response_code or secrets.token_urlsafe(24),
            "AgentID": agent_id,
        }
    )
