"""Dead notifications over HTTP (operators; `Authorization: Bearer <MERGEBOT_API_TOKEN>`):

- `GET /api/dead-letters?repo=owner/name` — what could not be delivered, with the last error;
- `POST /api/dead-letters/<id>/retry` — put it back in its sink's outbox with fresh attempts.
"""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.ids import is_repo
from mergebot.store.notify import NotifyStore
from mergebot.web.app import RUNTIME
from mergebot.web.events_api import bearer_token, token_matches


def _error(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="mergebot"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _refused(request: web.Request) -> web.Response | None:
    secret = request.app[RUNTIME].settings.api_token
    expected = secret.get_secret_value() if secret is not None else ""
    if not expected:
        return _error(503, "the API is disabled: the server has no MERGEBOT_API_TOKEN set")
    if not token_matches(bearer_token(request.headers.get("Authorization")), expected):
        return _error(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
    return None


async def list_dead_letters(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    repo = request.query.get("repo")
    if repo is not None and not is_repo(repo):
        return _error(400, f"repo {repo!r} is not of the form owner/name")
    runtime = request.app[RUNTIME]
    try:
        letters = await NotifyStore(runtime.redis, runtime.keys).dead_letters(repo)
    except (RedisError, OSError) as exc:
        return _error(503, f"storage unavailable: {type(exc).__name__}")
    return web.json_response({"dead_letters": letters})


async def retry_dead_letter(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    runtime = request.app[RUNTIME]
    letter_id = request.match_info["id"]
    try:
        record = await NotifyStore(runtime.redis, runtime.keys).retry_dead_letter(letter_id)
    except (RedisError, OSError) as exc:
        return _error(503, f"storage unavailable: {type(exc).__name__}")
    if record is None:
        return _error(404, f"no dead letter {letter_id!r}")
    return web.json_response({"retried": letter_id, "repo": record["repo"], "sink": record["sink"]})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/dead-letters", list_dead_letters)
    app.router.add_post("/api/dead-letters/{id}/retry", retry_dead_letter)
