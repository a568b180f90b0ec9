"""The follow-ups on the dashboard, as pages for people (SPEC §7: a follow-up is shown there):

- `GET /repos/<owner>/<repo>/followups` — every follow-up of the repo, open ones first;
- `GET /repos/<owner>/<repo>/followups/<id>` — one follow-up: what blocked, what it conflicted
  with, the exact commands, how to resume — the same context as the PR comment and the exported
  todo (`notify.view.followup_context`), in HTML instead of Markdown.

Chat notifications and truncated GitHub texts link to the second; the JSON stays at
`/api/followups`. Like the rest of the dashboard it only reads, asks no forge, and escapes
every string (autoescaped templates, http(s)-only links).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.config import Forge
from mergebot.events import EventName
from mergebot.followups import Followup, FollowupStatus, from_blocked
from mergebot.ids import FollowupId, is_repo
from mergebot.notify.view import Links, followup_context, github_web_url, when
from mergebot.runtime import Runtime
from mergebot.status import is_known, landing_of
from mergebot.store.followups import FollowupStore
from mergebot.web.app import RUNTIME
from mergebot.web.dashboard import RENDERER
from mergebot.web.dashboard_view import REFRESH_SECONDS, ago, repo_path, safe_url

log = logging.getLogger("mergebot.web.followup_pages")

_ORDER = {FollowupStatus.OPEN: 0, FollowupStatus.CLAIMED: 1, FollowupStatus.RESOLVED: 2}


def page_links(runtime: Runtime, repo: str) -> Links:
    """Links relative to this server (the page is already on it), and GitHub's for a GitHub repo."""
    forge_web = None
    if runtime.server_config.managed(repo) and runtime.server_config.repo(repo).forge is (
        Forge.GITHUB
    ):
        forge_web = github_web_url(runtime.settings.github_api_url)
    return Links("", forge_web)


def list_rows(followups: list[Followup], now: datetime) -> list[dict[str, Any]]:
    """The list page's rows: open, then claimed, then resolved; newest block first in each."""
    ordered = sorted(followups, key=lambda f: f.blocked_at, reverse=True)
    ordered.sort(key=lambda f: _ORDER[f.status])
    return [
        {
            "id": f.id,
            "slug": f.slug,
            "branch": f.branch,
            "sha": f.sha,
            "status": str(f.status),
            "reason_text": f.reason_text,
            "owner": f.resolved_by or f.claimed_by,
            "blocked_ago": ago(f.blocked_at, now),
            "blocked_at": when(f.blocked_at),
            "files": len(f.info().files),
            "checks": len(f.info().checks),
        }
        for f in ordered
    ]


def _render(
    request: web.Request, name: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    body = request.app[RENDERER].render(
        f"dashboard/{name}.html.j2", {"refresh": REFRESH_SECONDS, **context}
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _problem(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return _render(request, "problem", {"title": title, "message": message}, status=status)


def _repo_of(request: web.Request) -> str | None:
    repo = f"{request.match_info['owner']}/{request.match_info['name']}"
    return repo if is_repo(repo) else None


async def _from_log(runtime: Runtime, repo: str, followup_id: str) -> Followup | None:
    """A block the notifier has not stored as a follow-up yet (a link can be followed the moment
    GitHub shows it): the follow-up its `integration_blocked` asks for."""
    async for entry in runtime.eventlog.replay(repo=repo):
        env = entry.envelope
        if env.name is EventName.INTEGRATION_BLOCKED and env.payload.get("followup_id") == (
            followup_id
        ):
            return from_blocked(env, previous_id=None, now=datetime.now(UTC))
    return None


async def followups_page(request: web.Request) -> web.Response:
    repo = _repo_of(request)
    if repo is None:
        return _problem(request, 404, "No such repo", "That is not a repo name (owner/name).")
    runtime = request.app[RUNTIME]
    try:
        if not await is_known(runtime, repo):
            return _problem(request, 404, "No such repo", f"{repo} has no events here.")
        found = await FollowupStore(runtime.redis, runtime.keys).query(repo)
    except (RedisError, OSError) as exc:
        log.warning("followups_page_unavailable error=%s", type(exc).__name__)
        return _problem(request, 503, "Storage unavailable", "This page refreshes itself.")
    context = {
        "title": f"Follow-ups of {repo} · mergebot",
        "repo": repo,
        "repo_path": repo_path(repo),
        "rows": list_rows(found, datetime.now(UTC)),
    }
    return _render(request, "followups", context)


async def followup_page(request: web.Request) -> web.Response:
    repo = _repo_of(request)
    followup_id = FollowupId(request.match_info["id"])
    if repo is None:
        return _problem(request, 404, "No such repo", "That is not a repo name (owner/name).")
    runtime = request.app[RUNTIME]
    store = FollowupStore(runtime.redis, runtime.keys)
    try:
        followup = await store.get(repo, followup_id) or await _from_log(runtime, repo, followup_id)
        if followup is None:
            return _problem(
                request, 404, "No such follow-up", f"{repo} has no follow-up {followup_id}."
            )
        previous = await store.get(repo, followup.previous_id) if followup.previous_id else None
        landing = await landing_of(runtime, repo, followup.info().base_sha)
    except (RedisError, OSError) as exc:
        log.warning("followup_page_unavailable error=%s", type(exc).__name__)
        return _problem(request, 503, "Storage unavailable", "This page refreshes itself.")
    todo = followup_context(
        followup, page_links(runtime, repo), previous=previous, landed_by=landing
    )
    for check in todo["block"]["checks"]:  # a link a check reported becomes one only if http(s)
        check["url"] = safe_url(check["url"])
    context = {
        "title": f"{followup.id} · mergebot",
        "f": todo,
        "repo_path": repo_path(repo),
        "list_path": repo_path(repo) + "/followups",
    }
    return _render(request, "followup", context)


def setup(app: web.Application) -> None:
    app.router.add_get("/repos/{owner}/{name}/followups", followups_page)
    app.router.add_get("/repos/{owner}/{name}/followups/{id}", followup_page)
