"""A local HTTP server standing in for the Telegram Bot API, Discord webhooks, Slack (incoming
webhooks and the Web API) and a generic webhook receiver.

It answers as the real APIs document it (paths with the token, message ids, error shapes such as
Telegram's `{"ok": false, "error_code", "description"}` and Discord's 404 "Unknown Message"), keeps
the messages each chat shows (so a test can see one message edited through a lifecycle), and
refuses MarkdownV2 that Telegram would refuse. Tests script failures with `fail_next`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TELEGRAM_TOKEN = "123456:TEST-telegram-token-abcdef"
DISCORD_ID, DISCORD_TOKEN = "112233", "discord-webhook-token-XYZ"
SLACK_BOT_TOKEN = "xoxb-test-slack-bot-token"
SLACK_HOOK_PATH = "/slack/hooks/T000/B000/slack-hook-secret"
TG_SPECIAL = "_*[]()~>#+-=|{}.!"


def markdown_v2_problem(text: str) -> str | None:
    """Telegram's parse check, for what our templates use: an unescaped reserved character
    outside code, pre and link targets, or unbalanced * _ [ ]."""
    markup: list[str] = []
    i = 0
    try:
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if text.startswith("```", i):
                i = text.index("```", i + 3) + 3
                continue
            if ch == "`":
                j = i + 1
                while text[j] != "`":
                    j += 2 if text[j] == "\\" else 1
                i = j + 1
                continue
            if text.startswith("](", i):
                markup.append("]")
                j = i + 2
                while text[j] != ")":
                    j += 2 if text[j] == "\\" else 1
                i = j + 1
                continue
            if ch in TG_SPECIAL:
                if ch not in "*_[]":
                    return (
                        f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
                    )
                markup.append(ch)
            i += 1
    except (IndexError, ValueError):
        return "can't find end of the entity"
    if markup.count("*") % 2 or markup.count("_") % 2 or markup.count("[") != markup.count("]"):
        return "can't find end of the entity"
    return None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ChatStandIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.messages: dict[str, dict[str, Any]] = {}  # "<service>:<id>" -> what the chat shows
        self.posted: list[tuple[str, Any]] = []  # (service, body) of every new message, in order
        self._script: dict[str, list[Scripted]] = {}
        self._ids = itertools.count(1001)
        self.runner: web.AppRunner | None = None
        self.url = ""

    # -- control ---------------------------------------------------------------------------------
    def fail_next(
        self,
        route: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests of `route` (telegram, discord, slack_hook, slack_api,
        webhook) with this instead of the normal answer."""
        for _ in range(times):
            self._script.setdefault(route, []).append(Scripted(status, body, headers or {}, delay))

    def to(self, route: str) -> list[Recorded]:
        prefixes = {
            "telegram": "/bot",
            "discord": "/api/webhooks/",
            "slack_hook": "/slack/hooks/",
            "slack_api": "/slack/api/",
            "webhook": "/hook",
        }
        return [r for r in self.requests if r.path.startswith(prefixes[route])]

    async def start(self) -> ChatStandIn:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._telegram)
        app.router.add_post("/api/webhooks/{id}/{token}", self._discord_execute)
        app.router.add_patch("/api/webhooks/{id}/{token}/messages/{mid}", self._discord_edit)
        app.router.add_post("/slack/hooks/{a}/{b}/{c}", self._slack_hook)
        app.router.add_post("/slack/api/{method}", self._slack_api)
        app.router.add_post("/hook", self._webhook)
        # Scripted slow answers must not hold the test's teardown: stop waiting for them soon.
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # -- plumbing --------------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Recorded:
        loop = asyncio.get_running_loop()
        rec = Recorded(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            await request.read(),
            loop.time(),
        )
        self.requests.append(rec)
        return rec

    async def _scripted(self, route: str) -> web.Response | None:
        queue = self._script.get(route)
        if not queue:
            return None
        s = queue.pop(0)
        if s.delay:
            await asyncio.sleep(s.delay)
        if isinstance(s.body, dict | list):
            return web.json_response(s.body, status=s.status, headers=s.headers)
        return web.Response(status=s.status, text=str(s.body or ""), headers=s.headers)

    # -- Telegram --------------------------------------------------------------------------------
    async def _telegram(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (scripted := await self._scripted("telegram")) is not None:
            return scripted
        if request.match_info["token"] != TELEGRAM_TOKEN:
            return _tg_error(401, "Unauthorized")
        if request.content_type != "application/json":
            return _tg_error(400, "Bad Request: message text is empty")
        payload = await request.json()
        method = request.match_info["method"]
        if payload.get("parse_mode") == "MarkdownV2":
            problem = markdown_v2_problem(payload["text"])
            if problem:
                return _tg_error(400, f"Bad Request: can't parse entities: {problem}")
        if method == "sendMessage":
            mid = next(self._ids)
            shown = {"chat_id": payload["chat_id"], "text": payload["text"]}
            self.messages[f"telegram:{mid}"] = shown
            self.posted.append(("telegram", payload))
            return web.json_response({"ok": True, "result": {"message_id": mid, **shown}})
        if method == "editMessageText":
            key = f"telegram:{payload['message_id']}"
            if key not in self.messages:
                return _tg_error(400, "Bad Request: message to edit not found")
            if self.messages[key]["text"] == payload["text"]:
                return _tg_error(400, "Bad Request: message is not modified")
            self.messages[key]["text"] = payload["text"]
            return web.json_response({"ok": True, "result": {"message_id": payload["message_id"]}})
        return _tg_error(404, "Not Found")

    # -- Discord ---------------------------------------------------------------------------------
    def _discord_auth(self, request: web.Request) -> web.Response | None:
        ok = (request.match_info["id"], request.match_info["token"]) == (
            DISCORD_ID,
            DISCORD_TOKEN,
        )
        return (
            None
            if ok
            else web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        )

    async def _discord_execute(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (scripted := await self._scripted("discord")) is not None:
            return scripted
        if (refused := self._discord_auth(request)) is not None:
            return refused
        payload = await request.json()
        mid = str(next(self._ids))
        self.messages[f"discord:{mid}"] = payload
        self.posted.append(("discord", payload))
        if request.query.get("wait") == "true":
            return web.json_response({"id": mid, "channel_id": "42", **payload})
        return web.Response(status=204)

    async def _discord_edit(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (scripted := await self._scripted("discord")) is not None:
            return scripted
        if (refused := self._discord_auth(request)) is not None:
            return refused
        key = f"discord:{request.match_info['mid']}"
        if key not in self.messages:
            return web.json_response({"message": "Unknown Message", "code": 10008}, status=404)
        payload = await request.json()
        self.messages[key] = payload
        return web.json_response({"id": request.match_info["mid"], **payload})

    # -- Slack -----------------------------------------------------------------------------------
    async def _slack_hook(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (scripted := await self._scripted("slack_hook")) is not None:
            return scripted
        if request.path != SLACK_HOOK_PATH:
            return web.Response(status=404, text="no_service")
        payload = await request.json()
        if not payload.get("text") and not payload.get("blocks"):
            return web.Response(status=400, text="invalid_payload")
        self.posted.append(("slack_hook", payload))
        return web.Response(text="ok", content_type="text/html")

    async def _slack_api(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (scripted := await self._scripted("slack_api")) is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {SLACK_BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        payload = await request.json()
        method = request.match_info["method"]
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ids):06d}"
            self.messages[f"slack:{ts}"] = payload
            self.posted.append(("slack_api", payload))
            return web.json_response({"ok": True, "channel": "C024BE91L", "ts": ts})
        if method == "chat.update":
            key = f"slack:{payload.get('ts')}"
            if key not in self.messages or payload.get("channel") != "C024BE91L":
                return web.json_response({"ok": False, "error": "message_not_found"})
            self.messages[key] = payload
            return web.json_response({"ok": True, "channel": "C024BE91L", "ts": payload["ts"]})
        return web.json_response({"ok": False, "error": "unknown_method"})

    # -- generic webhook -------------------------------------------------------------------------
    async def _webhook(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (scripted := await self._scripted("webhook")) is not None:
            return scripted
        self.posted.append(("webhook", json.loads(await request.read())))
        return web.Response(status=204)


def _tg_error(status: int, description: str, **extra: Any) -> web.Response:
    body = {"ok": False, "error_code": status, "description": description, **extra}
    return web.json_response(body, status=status)


def telegram_429(retry_after: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }
