"""Follow-ups over HTTP: list them, claim one, resolve one.

- `GET /api/followups?repo=&status=&since=` — public like the queue API (the dashboard shows the
  same); newest block last.
- `POST /api/followups/<id>/claim` and `/resolve` — `Authorization: Bearer <MERGEBOT_API_TOKEN>`,
  body `{"by": "<who>"}` (resolve also takes `"resolution"`); `?repo=owner/name` when two repos
  have a follow-up of that id. A claim the status does not allow answers 409 with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.followups import Followup, FollowupStateError, FollowupStatus, claim, resolve
from mergebot.ids import FollowupId, is_repo
from mergebot.store.followups import FollowupNotFoundError, FollowupStore
from mergebot.web.app import RUNTIME
from mergebot.web.events_api import api_refusal

MAX_NAME = 200


def _error(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="mergebot"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def followup_json(followup: Followup) -> dict[str, Any]:
    return followup.model_dump(mode="json")


async def list_followups(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    query = request.query
    repo = query.get("repo")
    if repo is not None and not is_repo(repo):
        return _error(400, f"repo {repo!r} is not of the form owner/name")
    status: FollowupStatus | None = None
    if "status" in query:
        try:
            status = FollowupStatus(query["status"])
        except ValueError:
            allowed = ", ".join(s.value for s in FollowupStatus)
            return _error(400, f"status must be one of {allowed}")
    since: datetime | None = None
    if "since" in query:
        try:
            since = datetime.fromisoformat(query["since"].replace(" ", "+"))
        except ValueError:
            since = None
        if since is None or since.tzinfo is None:
            return _error(400, "since must be an ISO 8601 time with a timezone offset")
    store = FollowupStore(runtime.redis, runtime.keys)
    try:
        known = cast(set[str], await runtime.redis.smembers(runtime.keys.repos()))
        repos = [repo] if repo else sorted(known)
        found: list[Followup] = []
        for name in repos:
            found += await store.query(name, status=status, since=since)
    except (RedisError, OSError) as exc:
        return _error(503, f"storage unavailable: {type(exc).__name__}")
    found.sort(key=lambda f: (f.blocked_at, f.repo, f.id))
    return web.json_response({"followups": [followup_json(f) for f in found]})


async def _act(request: web.Request, action: str) -> web.Response:
    runtime = request.app[RUNTIME]
    refused = api_refusal(runtime, request.headers.get("Authorization"))
    if refused is not None:
        return _error(*refused)
    try:
        body = await request.json()
    except ValueError:
        return _error(400, 'the body must be JSON: {"by": "<who>"}')
    if not isinstance(body, dict):
        return _error(400, 'the body must be a JSON object: {"by": "<who>"}')
    by = body.get("by")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_NAME:
        return _error(422, f'"by" must name who {action}s it (1 to {MAX_NAME} characters)')
    resolution = body.get("resolution", "resolved by hand")
    if not isinstance(resolution, str) or len(resolution) > 1000:
        return _error(422, '"resolution" must be a string of at most 1000 characters')
    followup_id = FollowupId(request.match_info["id"])
    store = FollowupStore(runtime.redis, runtime.keys)
    try:
        repo = request.query.get("repo")
        if repo is None:
            repos = await store.repos_with(followup_id)
            if len(repos) > 1:
                return _error(409, f"{len(repos)} repos have follow-up {followup_id}; add ?repo=")
            repo = repos[0] if repos else None
        if repo is None or not is_repo(repo):
            return _error(404, f"no follow-up {followup_id!r}")
        now = datetime.now(UTC)
        if action == "claim":
            updated = await store.update(repo, followup_id, lambda f: claim(f, by, now))
        else:
            updated = await store.update(
                repo, followup_id, lambda f: resolve(f, by, now, resolution)
            )
    except FollowupNotFoundError as exc:
        return _error(404, str(exc))
    except FollowupStateError as exc:
        return _error(409, str(exc))
    except (RedisError, OSError) as exc:
        return _error(503, f"storage unavailable: {type(exc).__name__}")
    return web.json_response(followup_json(updated))


async def claim_followup(request: web.Request) -> web.Response:
    return await _act(request, "claim")


async def resolve_followup(request: web.Request) -> web.Response:
    return await _act(request, "resolve")


def setup(app: web.Application) -> None:
    app.router.add_get("/api/followups", list_followups)
    app.router.add_post("/api/followups/{id}/claim", claim_followup)
    app.router.add_post("/api/followups/{id}/resolve", resolve_followup)
