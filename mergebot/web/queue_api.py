"""`GET /api/repos/<owner>/<repo>/queue`: the same object `mergebot status --json` prints."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.ids import is_repo
from mergebot.status import is_known, repo_status_json
from mergebot.web.app import RUNTIME


async def queue(request: web.Request) -> web.Response:
    repo = f"{request.match_info['owner']}/{request.match_info['name']}"
    if not is_repo(repo):
        return web.json_response({"error": f"{repo!r} is not a repo name"}, status=400)
    runtime = request.app[RUNTIME]
    try:
        if not await is_known(runtime, repo):
            return web.json_response(
                {"error": f"{repo} is not managed and has no events"}, status=404
            )
        body = await repo_status_json(runtime, repo)
        return web.Response(body=body, content_type="application/json", charset="utf-8")
    except (RedisError, OSError) as exc:
        return web.json_response(
            {"error": f"storage unavailable: {type(exc).__name__}"}, status=503
        )


def setup(app: web.Application) -> None:
    app.router.add_get("/api/repos/{owner}/{name}/queue", queue)
