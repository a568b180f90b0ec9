"""`POST /webhook`: GitHub's webhooks, verified, translated and stored (SPEC §9).

Order matters: the signature is checked before the body is parsed (401), the body size is capped
(413), only then is it JSON (400). A 2xx answer means the translation is stored: a Redis failure
answers 503 so GitHub's redelivery (or an operator) can retry. Nothing here calls GitHub or git —
comment commands need a permission lookup, so they are queued for the command worker instead.
"""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.github import signature
from mergebot.github.intake import perform
from mergebot.github.translate import translate
from mergebot.github.translated import TranslationError
from mergebot.store.eventlog import EventConflictError
from mergebot.web.app import MAX_BODY_BYTES, RUNTIME

log = logging.getLogger("mergebot.github.webhook")

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
_DELIVERY = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_EVENT = re.compile(r"^[a-z_]{1,60}$")


def _answer(status: int, state: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"status": state, "message": message, **extra}, status=status)


async def _read_body(request: web.Request) -> bytes | web.Response:
    too_large = _answer(
        413, "too_large", f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB"
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large


async def receive(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    secret = runtime.settings.webhook_secret
    if secret is None or not secret.get_secret_value():
        log.warning("webhook_refused reason=no_secret_configured")
        return _answer(401, "unauthorized", "no webhook secret is configured on this server")
    header = request.headers.get(signature.HEADER)
    if not header:
        return _answer(401, "unauthorized", f"missing {signature.HEADER}")
    body = await _read_body(request)
    if isinstance(body, web.Response):
        return body
    if not signature.verify(secret.get_secret_value().encode(), body, header):
        log.warning("webhook_refused reason=bad_signature")
        return _answer(401, "unauthorized", f"{signature.HEADER} does not match the body")
    event = request.headers.get(EVENT_HEADER, "")
    delivery = request.headers.get(DELIVERY_HEADER, "")
    if not _EVENT.match(event):
        return _answer(400, "bad_request", f"missing or malformed {EVENT_HEADER}")
    if not _DELIVERY.match(delivery):
        return _answer(400, "bad_request", f"missing or malformed {DELIVERY_HEADER}")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _answer(400, "bad_request", "the body is not JSON")
    if event == "ping":
        return _answer(200, "pong", "webhook is set up", zen=str(payload.get("zen", "")))
    server_config = runtime.server_config
    try:
        translation = translate(event, payload, lambda r: server_config.repo(r).base_branch)
    except TranslationError as exc:
        log.warning("webhook_rejected delivery=%s event=%s problem=%s", delivery, event, exc)
        return _answer(400, "bad_request", str(exc), problems=exc.problems)
    if translation.ignored is not None:
        log.info(
            "webhook_ignored delivery=%s event=%s reason=%s", delivery, event, translation.ignored
        )
        return _answer(202, "ignored", translation.ignored)
    try:
        result = await perform(runtime, translation, id_prefix=delivery)
    except (RedisError, OSError) as exc:
        log.warning("webhook_unavailable delivery=%s error=%s", delivery, type(exc).__name__)
        return _answer(503, "unavailable", "the event log is unavailable; nothing was stored")
    except EventConflictError as exc:
        # The delivery was stored before and translates differently now (the config changed in
        # between): what was stored first stands, so this delivery is a duplicate.
        log.warning("webhook_redelivery_differs delivery=%s id=%s", delivery, exc.event_id)
        return _answer(200, "duplicate", "this delivery was stored before; kept the first version")
    return web.json_response({"status": "stored", **result.as_json()}, status=200)


def setup(app: web.Application) -> None:
    app.router.add_post("/webhook", receive)
