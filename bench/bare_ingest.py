"""The baseline of `POST /events`: a bare aiohttp app that checks the bearer token and stores
the body with one XADD, nothing else (no validation, no idempotency, no metrics).

    python bench/bare_ingest.py --port P --redis-url URL --token T

Started by `bench/events_api.py` beside `mergebot web`, on the same Redis.
"""

from __future__ import annotations

import argparse
import hmac

import redis.asyncio as aioredis
from aiohttp import web

STREAM = "bench:bare-events"


def app(redis: aioredis.Redis, token: str) -> web.Application:
    expected = f"Bearer {token}".encode()

    async def events(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        entry = await redis.xadd(STREAM, {"body": await request.read()})
        return web.json_response({"stored": [{"entry": entry}]}, status=201)

    application = web.Application()
    application.router.add_post("/events", events)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    redis = aioredis.from_url(args.redis_url, decode_responses=True)
    # No access log, as `mergebot web` (it would cost as much as the request).
    web.run_app(
        app(redis, args.token), host="127.0.0.1", port=args.port, print=None, access_log=None
    )


if __name__ == "__main__":
    main()
