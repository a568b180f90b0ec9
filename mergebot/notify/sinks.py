"""The sinks: Slack, Discord, Telegram, a signed JSON webhook, and the log.

A sink posts a rendered message and, when its API allows, edits one it posted before (that is how a
candidate keeps one message per chat). Secrets are read from the environment variable the config
names, at send time, and go only into the request: never into a message, an error or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from mergebot.config import (
    DiscordSink,
    LogSink,
    NotifySink,
    SlackSink,
    TelegramSink,
    WebhookSink,
)
from mergebot.notify.http import DeliveryError, HttpClient, MessageGoneError, classify
from mergebot.notify.view import Format
from mergebot.render import cut

log = logging.getLogger("mergebot.notify.sinks")

SIGNATURE_HEADER = "X-Mergebot-Signature-256"
TELEGRAM_LIMIT = 4096
DISCORD_CONTENT_LIMIT = 2000


@dataclass(frozen=True)
class Message:
    """One notification rendered for one sink: the format's body plus the plain-text version."""

    notification_id: str
    kind: str
    repo: str
    slug: str
    body: Any  # dict for JSON formats (Slack, Discord), str otherwise
    text: str  # plain text: the log line, the webhook's "text", fallbacks
    envelope: dict[str, Any]


class Sink(Protocol):
    kind: str
    format: Format
    can_edit: bool

    async def post(self, message: Message) -> str | None:
        """Send a new message; its id when the sink can edit it later."""
        ...

    async def edit(self, message_id: str, message: Message) -> None:
        """Replace the text of a message posted before; MessageGoneError when it is gone."""
        ...


def sink_key(config: NotifySink) -> str:
    """A stable name of a sink's destination (not of its event list), used in Redis keys: editing
    which events a sink receives keeps its conversations."""
    destination = config.model_dump(mode="json", exclude={"events"})
    digest = hashlib.sha256(json.dumps(destination, sort_keys=True).encode()).hexdigest()
    return f"{config.sink}-{digest[:12]}"


def _secret(environ: Mapping[str, str], name: str | None, what: str) -> str:
    value = environ.get(name or "", "").strip()
    if not name or not value:
        raise DeliveryError(
            f"{what}: environment variable {name or '(not configured)'} is not set",
            retryable=False,
        )
    return value


class SlackSinkImpl:
    """Slack: an incoming webhook (post only), or the Web API with a bot token and a channel
    (chat.postMessage, then chat.update to edit)."""

    kind = "slack"
    format = Format.SLACK

    def __init__(self, config: SlackSink, http: HttpClient, environ: Mapping[str, str]) -> None:
        self.config = config
        self.http = http
        self.environ = environ
        self.can_edit = bool(config.bot_token_env and config.channel)

    async def post(self, message: Message) -> str | None:
        body = message.body
        if self.can_edit:
            reply = await self._api("chat.postMessage", {**body, "channel": self.config.channel})
            return f"{reply.get('channel') or self.config.channel} {reply['ts']}"
        url = _secret(self.environ, self.config.url_env, "slack webhook URL")
        resp = await self.http.request("POST", url, json_body=body, secrets=[url])
        if error := classify(resp):
            raise error
        return None

    async def edit(self, message_id: str, message: Message) -> None:
        channel, _, ts = message_id.partition(" ")
        try:
            await self._api("chat.update", {**message.body, "channel": channel, "ts": ts})
        except DeliveryError as exc:
            if exc.message.endswith(("message_not_found", "cant_update_message")):
                raise MessageGoneError(exc.message) from None
            raise

    async def _api(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        token = _secret(self.environ, self.config.bot_token_env, "slack bot token")
        resp = await self.http.request(
            "POST",
            f"{self.config.api_url.rstrip('/')}/{method}",
            json_body=payload,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json; charset=utf-8",
            },
            secrets=[token],
        )
        body = resp.body if isinstance(resp.body, dict) else {}
        api_error = None if body.get("ok") else str(body.get("error") or "no ok in the answer")
        if error := classify(resp, api_error=api_error if resp.status < 300 else None):
            raise error
        return body


class DiscordSinkImpl:
    """Discord webhook: execute with `?wait=true` to learn the message id, edit with
    PATCH /webhooks/<id>/<token>/messages/<message id>. Mentions are always off."""

    kind = "discord"
    format = Format.DISCORD
    can_edit = True

    def __init__(self, config: DiscordSink, http: HttpClient, environ: Mapping[str, str]) -> None:
        self.config = config
        self.http = http
        self.environ = environ

    def _payload(self, message: Message) -> dict[str, Any]:
        body = dict(message.body)
        body["content"] = cut(str(body.get("content") or ""), DISCORD_CONTENT_LIMIT)
        body["allowed_mentions"] = {"parse": []}
        return body

    def _split(self) -> tuple[str, str, dict[str, str]]:
        url = _secret(self.environ, self.config.url_env, "discord webhook URL")
        parts = urlsplit(url)
        params = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        return url, base, params

    async def post(self, message: Message) -> str | None:
        url, base, params = self._split()
        resp = await self.http.request(
            "POST", base, json_body=self._payload(message), params={**params, "wait": "true"},
            secrets=[url],
        )  # fmt: skip
        if error := classify(resp):
            raise error
        body = resp.body if isinstance(resp.body, dict) else {}
        message_id = body.get("id")
        return str(message_id) if message_id else None

    async def edit(self, message_id: str, message: Message) -> None:
        url, base, params = self._split()
        thread = {k: v for k, v in params.items() if k == "thread_id"}
        resp = await self.http.request(
            "PATCH", f"{base}/messages/{message_id}", json_body=self._payload(message),
            params=thread, secrets=[url],
        )  # fmt: skip
        if resp.status == 404:
            raise MessageGoneError(f"HTTP 404: {resp.error_text()}")
        if error := classify(resp):
            raise error


class TelegramSinkImpl:
    """Telegram Bot API: sendMessage, then editMessageText, with MarkdownV2 text."""

    kind = "telegram"
    format = Format.TELEGRAM
    can_edit = True

    def __init__(self, config: TelegramSink, http: HttpClient, environ: Mapping[str, str]) -> None:
        self.config = config
        self.http = http
        self.environ = environ

    def _text(self, message: Message) -> dict[str, Any]:
        text = str(message.body)
        if len(text) <= TELEGRAM_LIMIT:
            return {"text": text, "parse_mode": "MarkdownV2"}
        # Cutting MarkdownV2 can break an entity; the plain rendering is safe to cut.
        return {"text": cut(message.text, TELEGRAM_LIMIT)}

    async def _call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        token = _secret(self.environ, self.config.token_env, "telegram bot token")
        resp = await self.http.request(
            "POST",
            f"{self.config.api_url.rstrip('/')}/bot{token}/{method}",
            json_body=payload,
            secrets=[token],
        )
        if error := classify(resp):
            if "message is not modified" in error.message:
                return {}
            if "message to edit not found" in error.message or "can't be edited" in error.message:
                raise MessageGoneError(error.message)
            raise error
        body = resp.body if isinstance(resp.body, dict) else {}
        if not body.get("ok"):
            raise DeliveryError(f"API error: {resp.error_text()}", retryable=False)
        result = body.get("result")
        return result if isinstance(result, dict) else {}

    async def post(self, message: Message) -> str | None:
        result = await self._call(
            "sendMessage",
            {
                "chat_id": self.config.chat_id,
                **self._text(message),
                "link_preview_options": {"is_disabled": True},
            },
        )
        message_id = result.get("message_id")
        return str(message_id) if message_id is not None else None

    async def edit(self, message_id: str, message: Message) -> None:
        await self._call(
            "editMessageText",
            {
                "chat_id": self.config.chat_id,
                "message_id": int(message_id),
                **self._text(message),
                "link_preview_options": {"is_disabled": True},
            },
        )


def signature(secret: str, body: bytes) -> str:
    """The value of X-Mergebot-Signature-256 for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSinkImpl:
    """A generic JSON webhook: `{"event": <envelope>, "text": <plain text>}`, HMAC-SHA256 signed."""

    kind = "webhook"
    format = Format.PLAIN
    can_edit = False

    def __init__(self, config: WebhookSink, http: HttpClient, environ: Mapping[str, str]) -> None:
        self.config = config
        self.http = http
        self.environ = environ

    async def post(self, message: Message) -> str | None:
        body = json.dumps(
            {"event": message.envelope, "text": message.text}, ensure_ascii=False
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Mergebot-Event": message.kind,
            "X-Mergebot-Delivery": message.notification_id,
        }
        secrets = [self.config.url]
        if self.config.secret_env:
            secret = _secret(self.environ, self.config.secret_env, "webhook signing secret")
            headers[SIGNATURE_HEADER] = signature(secret, body)
            secrets.append(secret)
        resp = await self.http.request(
            "POST", self.config.url, data=body, headers=headers, secrets=secrets
        )
        if error := classify(resp):
            raise error
        return None

    async def edit(self, message_id: str, message: Message) -> None:
        raise MessageGoneError("the webhook sink cannot edit")


class LogSinkImpl:
    """The log: one INFO line per notification (the plain text, quoted onto one line)."""

    kind = "log"
    format = Format.PLAIN
    can_edit = False

    async def post(self, message: Message) -> str | None:
        log.info(
            "notification repo=%s slug=%s kind=%s text=%r",
            message.repo,
            message.slug,
            message.kind,
            message.text,
        )
        return None

    async def edit(self, message_id: str, message: Message) -> None:
        raise MessageGoneError("the log cannot edit")


def build_sink(
    config: NotifySink, http: HttpClient, environ: Mapping[str, str] | None = None
) -> Sink:
    env: Mapping[str, str] = os.environ if environ is None else environ
    if isinstance(config, SlackSink):
        return SlackSinkImpl(config, http, env)
    if isinstance(config, DiscordSink):
        return DiscordSinkImpl(config, http, env)
    if isinstance(config, TelegramSink):
        return TelegramSinkImpl(config, http, env)
    if isinstance(config, WebhookSink):
        return WebhookSinkImpl(config, http, env)
    if isinstance(config, LogSink):
        return LogSinkImpl()
    raise TypeError(f"unknown sink {config!r}")
