"""Load shedding: past the bound of ingest requests in flight, POST /events and POST /webhook
answer 503 with Retry-After at once and store nothing; accepted requests are not disturbed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.config import ServerConfig
from mergebot.events import Envelope
from mergebot.main import create_app
from mergebot.runtime import build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.eventlog import AppendResult, EventLog
from mergebot.store.keys import Keys
from tests.conftest import settings_for
from tests.factories import raw_event
from tests.web.test_events_api import AUTH, metric, stored

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


class GatedEventLog(EventLog):
    """An event log whose appends wait for `gate`: a request held in flight on purpose."""

    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        super().__init__(redis, keys)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def append_many(self, envelopes: Sequence[Envelope]) -> list[AppendResult]:
        self.entered.set()
        await self.gate.wait()
        return await super().append_many(envelopes)


async def test_ingest_beyond_the_bound_is_refused_at_once_and_stores_nothing(
    aiohttp_client: MakeClient, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, max_ingest_in_flight=1, webhook_secret="s3cret")
    runtime = build_runtime(settings, ServerConfig({}, {}), redis, keys)
    gated = GatedEventLog(redis, keys)
    runtime.eventlog = gated
    client = await aiohttp_client(create_app(runtime))
    first = asyncio.ensure_future(
        client.post("/events", json=raw_event("review_approved", id="first"), headers=AUTH)
    )
    await gated.entered.wait()  # the first request is in flight, holding the only place

    refused = await client.post(
        "/events", json=raw_event("review_approved", id="second"), headers=AUTH
    )
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert "retry later" in (await refused.json())["error"]
    hook = await client.post("/webhook", data=b"{}", headers={"X-GitHub-Event": "ping"})
    assert hook.status == 503
    assert (await client.get("/healthz")).status == 200  # only ingest is bounded

    gated.gate.set()
    assert (await first).status == 201
    assert [e["id"] for e in await stored(runtime.eventlog)] == ["first"]
    again = await client.post(
        "/events", json=raw_event("review_approved", id="second"), headers=AUTH
    )
    assert again.status == 201  # the place is free again: the retry gets in
    text = await (await client.get("/metrics")).text()
    assert metric(text, "mergebot_requests_shed_total", path="/events") == 1
    assert metric(text, "mergebot_requests_shed_total", path="/webhook") == 1
