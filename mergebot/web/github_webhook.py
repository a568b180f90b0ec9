"""`POST /webhook`: GitHub's webhooks, verified, translated and stored (SPEC §9).

Order matters: the signature is checked before the body is parsed (401), the body size is capped
(413), only then is it JSON (400). A 2xx answer means the translation is stored: a Redis failure
answers 503 so GitHub's redelivery (or an operator) can retry. Nothing here calls GitHub or git —
comment commands need a permission lookup, so they are queued for the command worker instead.
Every refusal is logged and counted; refusals of signed (authentic) deliveries are also recorded
for `mergebot status`, unsigned ones are not (anyone could fill the record otherwise).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.events import loads_json
from mergebot.github import signature
from mergebot.github.intake import IntakeResult, perform
from mergebot.github.translate import translate
from mergebot.github.translated import SOURCE, Translation, TranslationError
from mergebot.store.eventlog import EventConflictError
from mergebot.store.refusals import Refusal, RefusalLog
from mergebot.web.app import MAX_BODY_BYTES, RUNTIME
from mergebot.web.metrics import METRICS

log = logging.getLogger("mergebot.github.webhook")

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
_DELIVERY = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
# GitHub event names are lowercase words with underscores and digits (`projects_v2_item`).
_EVENT = re.compile(r"^[a-z][a-z0-9_]{0,59}$")


@dataclass
class _Refused(Exception):
    status: int
    reason: str
    message: str
    signed: bool = False  # an authentic delivery: worth recording
    delivery: str | None = None
    repo: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _answer(status: int, state: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"status": state, "message": message, **extra}, status=status)


async def _read_body(request: web.Request) -> bytes:
    too_large = _Refused(
        413, "too_large", f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB"
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None


def _repo_hint(payload: object) -> str | None:
    repository = payload.get("repository") if isinstance(payload, dict) else None
    name = repository.get("full_name") if isinstance(repository, dict) else None
    return name if isinstance(name, str) else None


async def _verified(request: web.Request) -> tuple[str, str, bytes]:
    """The event name, delivery id and body of an authentic request (or _Refused)."""
    secret = request.app[RUNTIME].settings.webhook_secret
    if secret is None or not secret.get_secret_value():
        raise _Refused(401, "no_secret", "no webhook secret is configured on this server")
    header = request.headers.get(signature.HEADER)
    if not header:
        raise _Refused(401, "unsigned", f"missing {signature.HEADER}")
    body = await _read_body(request)
    if not signature.verify(secret.get_secret_value().encode(), body, header):
        raise _Refused(401, "bad_signature", f"{signature.HEADER} does not match the body")
    event = request.headers.get(EVENT_HEADER, "")
    delivery = request.headers.get(DELIVERY_HEADER, "")
    if not _EVENT.match(event):
        raise _Refused(400, "bad_header", f"missing or malformed {EVENT_HEADER}", signed=True)
    if not _DELIVERY.match(delivery):
        raise _Refused(400, "bad_header", f"missing or malformed {DELIVERY_HEADER}", signed=True)
    return event, delivery, body


async def _store(request: web.Request, delivery: str, translation: Translation) -> IntakeResult:
    try:
        return await perform(request.app[RUNTIME], translation, id_prefix=delivery)
    except (RedisError, OSError) as exc:
        log.warning("webhook_unavailable delivery=%s error=%s", delivery, type(exc).__name__)
        raise _Refused(
            503, "event_log_unavailable", "the event log is unavailable; nothing was stored"
        ) from None


async def _receive(request: web.Request) -> web.Response:
    event, delivery, body = await _verified(request)
    try:
        payload = loads_json(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Refused(
            400, "not_json", "the body is not JSON", signed=True, delivery=delivery
        ) from None
    if event == "ping":
        zen = payload.get("zen", "") if isinstance(payload, dict) else ""
        return _answer(200, "pong", "webhook is set up", zen=str(zen))
    server_config = request.app[RUNTIME].server_config
    try:
        translation = translate(event, payload, lambda r: server_config.repo(r).base_branch)
    except TranslationError as exc:
        raise _Refused(
            400, "untranslatable", str(exc), signed=True, delivery=delivery,
            repo=_repo_hint(payload), extra={"problems": exc.problems},
        ) from None  # fmt: skip
    if translation.ignored is not None:
        log.info(
            "webhook_ignored delivery=%s event=%s why=%s", delivery, event, translation.ignored
        )
        return _answer(202, "ignored", translation.ignored)
    try:
        result = await _store(request, delivery, translation)
    except EventConflictError as exc:
        # Stored before, and it translates differently now (the config changed in between): the
        # first version stands, so this is a duplicate delivery — recorded, since it is unusual.
        await _record(request, _Refused(
            200, "redelivery_differs", str(exc), signed=True, delivery=delivery,
            repo=translation.repo,
        ))  # fmt: skip
        return _answer(200, "duplicate", "this delivery was stored before; kept the first version")
    metrics = request.app[METRICS]
    for stored, draft in zip(result.stored, translation.events, strict=True):
        metrics.stored(SOURCE, draft.event_name.value, duplicate=stored.duplicate)
    if not result.stored and result.command_new is None:
        # A check result only wakes an integration waiting on that commit: nothing is stored, so
        # the answer says so (202, like every delivery mergebot acknowledges without storing).
        return web.json_response({"status": "acknowledged", **result.as_json()}, status=202)
    return web.json_response({"status": "stored", **result.as_json()}, status=200)


async def receive(request: web.Request) -> web.Response:
    try:
        return await _receive(request)
    except _Refused as refused:
        request.app[METRICS].refused(SOURCE, [], refused.status, refused.reason)
        log.warning(
            "webhook_refused status=%d reason=%s delivery=%s message=%s",
            refused.status, refused.reason, refused.delivery, refused.message[:300],
        )  # fmt: skip
        if refused.signed:
            await _record(request, refused)
        state = {401: "unauthorized", 413: "too_large", 503: "unavailable"}
        return _answer(
            refused.status, state.get(refused.status, "bad_request"), refused.message,
            **refused.extra,
        )  # fmt: skip


async def _record(request: web.Request, refused: _Refused) -> None:
    """Keep a refused authentic delivery visible; failing to record never changes the answer."""
    runtime = request.app[RUNTIME]
    entry = Refusal(
        source=SOURCE,
        status=refused.status,
        reason=refused.reason,
        message=refused.message[:1000],
        event_ids=[refused.delivery] if refused.delivery else [],
        repos=[refused.repo] if refused.repo else [],
        errors=[{"msg": p} for p in refused.extra.get("problems", [])][:50],
    )
    try:
        await RefusalLog(runtime.redis, runtime.keys).record(entry)
    except (RedisError, OSError) as exc:
        log.warning("refusal_not_recorded reason=%s error=%s", refused.reason, type(exc).__name__)


def setup(app: web.Application) -> None:
    app.router.add_post("/webhook", receive)
    secret = app[RUNTIME].settings.webhook_secret
    if secret is None or not secret.get_secret_value():
        log.warning(
            "webhook_disabled: MERGEBOT_WEBHOOK_SECRET is not set, POST /webhook answers 401"
        )
