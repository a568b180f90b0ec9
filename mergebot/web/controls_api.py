"""`POST /api/repos/<owner>/<repo>/freeze` and `/unfreeze` (bearer token, like `POST /events`).

A freeze body is `{"reason": "…", "until": "<ISO 8601 time or 90m/4h/2d>" (optional),
"by": "…" (optional, default "api")}`; an unfreeze body is `{}` or `{"by": "…"}`. Both append
one event (`queue_frozen` / `queue_unfrozen`) to the log and answer 201 with its id; the
processor folds it and the integrator obeys it before it moves base next. Bad input answers 400
or 422 with what is wrong, and nothing is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.events import EventError, EventName, envelope_for, parse_event
from mergebot.gate import parse_until
from mergebot.ids import is_repo
from mergebot.web.app import RUNTIME
from mergebot.web.events_api import api_refusal

SOURCE = "api"


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | None:
    """The JSON object of the body ({} when empty); None when it is something else."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


async def _control(request: web.Request, name: EventName) -> web.Response:
    runtime = request.app[RUNTIME]
    refused = api_refusal(runtime, request.headers.get("Authorization"))
    if refused is not None:
        return _error(*refused)
    repo = f"{request.match_info['owner']}/{request.match_info['name']}"
    if not is_repo(repo) or not runtime.server_config.managed(repo):
        return _error(404, f"{repo} is not a repo mergebot manages")
    body = await _body(request)
    if body is None:
        return _error(400, "the body is not a JSON object")
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "name": name.value,
        "repo": repo,
        "base": runtime.server_config.repo(repo).base_branch,
        "by": body.get("by", SOURCE),
        "at": now.isoformat(),
    }
    if name is EventName.QUEUE_FROZEN:
        fields["reason"] = body.get("reason")
        if body.get("until") is not None:
            try:
                fields["until"] = parse_until(str(body["until"]), now).isoformat()
            except ValueError as exc:
                return _error(422, str(exc), errors=[{"loc": ["until"], "msg": str(exc)}])
    try:
        parsed = parse_event(fields)
    except EventError as exc:
        return _error(422, str(exc), errors=exc.errors)
    envelope = envelope_for(parsed.event, source=SOURCE, received_at=now)
    try:
        result = await runtime.eventlog.append(envelope)
    except (RedisError, OSError) as exc:
        return _error(503, f"storage unavailable: {type(exc).__name__}")
    return web.json_response(
        {"id": envelope.id, "duplicate": result.duplicate, "event": envelope.payload}, status=201
    )


async def freeze(request: web.Request) -> web.Response:
    return await _control(request, EventName.QUEUE_FROZEN)


async def unfreeze(request: web.Request) -> web.Response:
    return await _control(request, EventName.QUEUE_UNFROZEN)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/repos/{owner}/{name}/freeze", freeze)
    app.router.add_post("/api/repos/{owner}/{name}/unfreeze", unfreeze)
