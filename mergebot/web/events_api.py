"""`POST /events`: the canonical event API (SPEC §9) for producers other than GitHub.

The handler only authenticates, validates and appends; it answers 2xx only after the event log
has stored every event of the request, and stores nothing when any of them is refused. The order
of checks is fixed and cheap-first: token, JSON, validation, then the one Redis call.

No token configured → 503: the endpoint is switched off until the operator sets
MERGEBOT_API_TOKEN. It is not the client's credentials that are wrong (401 would say so), and a
producer that retries a 503 gets its events in once the server is configured.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.events import EventError, envelope_for, loads_json, parse_events_body, plain_json
from mergebot.ids import is_repo
from mergebot.runtime import Runtime
from mergebot.store.eventlog import EventConflictError
from mergebot.store.refusals import Refusal, RefusalLog
from mergebot.web.app import RUNTIME
from mergebot.web.metrics import METRICS, event_label

SOURCE = "api"
log = logging.getLogger("mergebot.web.events_api")


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not reveal a prefix of the token."""
    if given is None:
        # Still compare, so a missing header costs what a wrong one does.
        hmac.compare_digest(expected.encode(), expected.encode())
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def api_refusal(runtime: Runtime, authorization: str | None) -> tuple[int, str] | None:
    """(status, message) when a request to the token-protected API may not go on: 503 when
    the server has no token (its set-up, not the client, is at fault), 401 when the bearer
    token is missing or wrong; None when it matches."""
    secret = runtime.settings.api_token
    expected = secret.get_secret_value() if secret is not None else ""
    if not expected:
        return 503, "the API is disabled: the server has no MERGEBOT_API_TOKEN set"
    if not token_matches(bearer_token(authorization), expected):
        return 401, "missing or wrong bearer token (Authorization: Bearer <token>)"
    return None


def _repos_of(body: object) -> list[str]:
    """The well-formed repo names a refused body mentions, so `status` can show it per repo
    (whatever else a hostile body puts under "repo": a list, an object)."""
    items = body if isinstance(body, list) else [body]
    found = [item.get("repo") for item in items if isinstance(item, dict)]
    return sorted({r for r in found if isinstance(r, str) and is_repo(r)})


def _names_of(body: object) -> list[str]:
    """Event names of a request body, as metric labels (unknown names collapse into one)."""
    items = body if isinstance(body, list) else [body]
    return [event_label(item.get("name") if isinstance(item, dict) else None) for item in items]


class _Refusal(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        names: list[str] | None = None,
        repos: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        record: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.names = names or []
        self.repos = repos or []
        self.extra = extra or {}
        self.record = record


async def post_events(request: web.Request) -> web.Response:
    try:
        return await _accept(request)
    except _Refusal as refusal:
        return await _refuse(request, refusal)


async def _accept(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    secret = runtime.settings.api_token
    expected = secret.get_secret_value() if secret is not None else ""
    if not expected:
        raise _Refusal(
            503,
            "api_disabled",
            "the canonical event API is disabled: the server has no MERGEBOT_API_TOKEN set",
            record=False,
        )
    if not token_matches(bearer_token(request.headers.get("Authorization")), expected):
        raise _Refusal(
            401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)",
            record=False,
        )  # fmt: skip
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _Refusal(413, "too_large", "the request body is too large") from None
    try:
        body = loads_json(raw)
    except (ValueError, RecursionError) as exc:
        raise _Refusal(400, "not_json", f"the body is not valid JSON: {exc}") from None
    try:
        parsed = parse_events_body(
            body, max_extra_bytes=runtime.settings.max_extra_field_bytes, plain=plain_json(raw)
        )
    except EventError as exc:
        raise _Refusal(
            422, "invalid", "invalid event" + ("s" if isinstance(body, list) else ""),
            names=_names_of(body), repos=_repos_of(body), extra={"errors": exc.errors},
        ) from None  # fmt: skip
    received_at = datetime.now(UTC)
    envelopes = [
        envelope_for(p.event, source=SOURCE, event_id=p.id, received_at=received_at) for p in parsed
    ]
    try:
        results = await runtime.eventlog.append_many(envelopes)
    except EventConflictError as exc:
        raise _Refusal(
            409, "conflict", str(exc), names=_names_of(body), repos=_repos_of(body),
            extra={"id": exc.event_id},
        ) from None  # fmt: skip
    except (RedisError, OSError) as exc:
        raise _Refusal(
            503, "event_log_unavailable",
            f"the event log is unavailable ({type(exc).__name__}); nothing was stored, retry later",
            names=_names_of(body), record=False,
        ) from None  # fmt: skip
    metrics = request.app[METRICS]
    for env, result in zip(envelopes, results, strict=True):
        metrics.stored(SOURCE, env.name.value, duplicate=result.duplicate)
    # DEBUG, not INFO: one line per request costs as much as the request at ingest rates; what
    # was stored is counted (mergebot_events_accepted_total / _duplicate_total) and in the log.
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "events_stored source=%s new=%d duplicates=%d ids=%s",
            SOURCE,
            sum(not r.duplicate for r in results),
            sum(r.duplicate for r in results),
            ",".join(r.id for r in results[:20]),
        )
    stored = [{"id": r.id, "duplicate": r.duplicate} for r in results]
    return web.json_response({"stored": stored}, status=201)


async def _refuse(request: web.Request, refusal: _Refusal) -> web.Response:
    request.app[METRICS].refused(SOURCE, refusal.names, refusal.status, refusal.reason)
    log.warning(
        "event_refused source=%s status=%d reason=%s message=%s",
        SOURCE, refusal.status, refusal.reason, refusal.message,
    )  # fmt: skip
    if refusal.record:
        await _record(request, refusal)
    headers = {"WWW-Authenticate": 'Bearer realm="mergebot"'} if refusal.status == 401 else None
    return web.json_response(
        {"error": refusal.message, **refusal.extra}, status=refusal.status, headers=headers
    )


async def _record(request: web.Request, refusal: _Refusal) -> None:
    """Keep the refusal visible for `mergebot status`; a failure here never changes the answer."""
    runtime = request.app[RUNTIME]
    entry = Refusal(
        source=SOURCE,
        status=refusal.status,
        reason=refusal.reason,
        message=refusal.message,
        event_ids=[refusal.extra["id"]] if "id" in refusal.extra else [],
        repos=refusal.repos,
        errors=refusal.extra.get("errors", [])[:50],
    )
    try:
        await RefusalLog(runtime.redis, runtime.keys).record(entry)
    except (RedisError, OSError) as exc:
        log.warning("refusal_not_recorded reason=%s error=%s", refusal.reason, type(exc).__name__)


def setup(app: web.Application) -> None:
    app.router.add_post("/events", post_events)
    runtime = app[RUNTIME]
    if runtime.settings.api_token is None or not runtime.settings.api_token.get_secret_value():
        log.warning("api_disabled: MERGEBOT_API_TOKEN is not set, POST /events answers 503")
