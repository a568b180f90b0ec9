"""The queue dashboard (SPEC §9): `GET /` and `GET /repos/<owner>/<repo>`, HTML for people.

It reads what `GET /api/repos/<owner>/<repo>/queue` serves (`mergebot.status.repo_status`, one
builder for both) plus the integrator's records: the attempt in progress (its integration
commit and checks) and the integration fields of finished items. Nothing here writes, and
nothing here asks a forge: a page costs a few Redis reads, so it can refresh itself every few
seconds without a script. Pages come from `templates/dashboard/*.html.j2` with autoescaping on;
no setting (and so no token) is ever passed to a template.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.attempts import AttemptStore
from mergebot.config import Forge
from mergebot.followups import Followup
from mergebot.ids import FollowupId, is_repo
from mergebot.notify.view import github_web_url
from mergebot.render import Renderer, renderer
from mergebot.runtime import Runtime
from mergebot.status import is_known, known_repos, repo_status
from mergebot.store.followups import FollowupStore
from mergebot.store.queue import QueueStore
from mergebot.web.app import RUNTIME
from mergebot.web.dashboard_view import (
    REFRESH_SECONDS,
    Links,
    RepoView,
    candidate_id,
    overview,
    repo_view,
)

log = logging.getLogger("mergebot.web.dashboard")

RENDERER = web.AppKey("dashboard_renderer", Renderer)
HTML = "text/html"


def _links(request: web.Request, repo: str) -> Links:
    runtime = request.app[RUNTIME]
    forge_web = None
    if runtime.server_config.repo(repo).forge is Forge.GITHUB:
        forge_web = github_web_url(runtime.settings.github_api_url)
    return Links(forge_web_url=forge_web)


async def _integrations(runtime: Runtime, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Integration records by item id: the live attempt of in-progress items, the recorded
    `integration` fields of the others (blocked and finished items)."""
    repo, base = str(status["repo"]), str(status["base"])
    found: dict[str, dict[str, Any]] = {}
    in_queue = [c for c in status["candidates"] if c["status"] != "waiting"]
    attempts = AttemptStore(runtime.redis, runtime.keys)
    for candidate in in_queue:
        if candidate["status"] == "in_progress":
            attempt = await attempts.get(repo, base, candidate_id(candidate))
            if attempt is not None:
                found[attempt.item_id] = attempt.model_dump(mode="json")
    others = [candidate_id(c) for c in in_queue if candidate_id(c) not in found]
    items = await QueueStore(runtime.redis, runtime.keys).get_many(repo, base, others)
    for key, item in items.items():
        if item.integration:
            found[key] = item.integration.as_json()
    return found


async def _followups(runtime: Runtime, status: dict[str, Any]) -> dict[str, Followup]:
    """The stored follow-ups the candidates name (a block not stored yet is simply absent)."""
    store = FollowupStore(runtime.redis, runtime.keys)
    ids = {FollowupId(str(c["followup_id"])) for c in status["candidates"] if c.get("followup_id")}
    found: dict[str, Followup] = {}
    for followup_id in sorted(ids):
        followup = await store.get(str(status["repo"]), followup_id)
        if followup is not None:
            found[followup_id] = followup
    return found


def _page(
    request: web.Request, name: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    body = request.app[RENDERER].render(
        f"dashboard/{name}.html.j2", {"refresh": REFRESH_SECONDS, **context}
    )
    return web.Response(text=body, status=status, content_type=HTML, charset="utf-8")


def _unavailable(request: web.Request, exc: Exception) -> web.Response:
    log.warning("dashboard_storage_unavailable error=%s", type(exc).__name__)
    return _page(
        request,
        "problem",
        {
            "title": "Storage unavailable",
            "message": f"mergebot cannot read its store right now ({type(exc).__name__}). "
            "This page refreshes itself.",
        },
        status=503,
    )


async def index(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    try:
        views = [
            repo_view(await repo_status(runtime, repo), now, links=_links(request, repo))
            for repo in await known_repos(runtime)
        ]
    except (RedisError, OSError) as exc:
        return _unavailable(request, exc)
    return _page(request, "index", {"title": "mergebot", **overview(views)})


def _not_found(request: web.Request, message: str) -> web.Response:
    return _page(request, "problem", {"title": "No such repo", "message": message}, status=404)


async def repo_page(request: web.Request) -> web.Response:
    repo = f"{request.match_info['owner']}/{request.match_info['name']}"
    if not is_repo(repo):
        return _not_found(request, f"“{repo}” is not a repo name (owner/name).")
    runtime = request.app[RUNTIME]
    try:
        if not await is_known(runtime, repo):
            return _not_found(request, f"{repo} is not managed by this mergebot and has no events.")
        status = await repo_status(runtime, repo)
        integrations = await _integrations(runtime, status)
        followups = await _followups(runtime, status)
    except (RedisError, OSError) as exc:
        return _unavailable(request, exc)
    view: RepoView = repo_view(
        status,
        datetime.now(UTC),
        integrations=integrations,
        links=_links(request, repo),
        followups=followups,
    )
    return _page(request, "repo", {"title": f"{repo} · mergebot", "view": view})


def setup(app: web.Application) -> None:
    app[RENDERER] = renderer(app[RUNTIME].server_config.templates_dir)
    app.router.add_get("/", index)
    app.router.add_get("/repos/{owner}/{name}", repo_page)
