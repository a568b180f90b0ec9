"""Hostile requests to POST /events: each answered with a clear 4xx, nothing stored.

The first five are the reproductions of a red-team pass that got a 500 (before any of them was
fixed); the rest are the limits that keep one authenticated request from storing what git or
Redis should never see.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.main import create_app
from mergebot.runtime import Runtime
from mergebot.store.eventlog import EventLog
from tests.conftest import API_TOKEN
from tests.factories import raw_event

AUTH = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: MakeClient, runtime: Runtime) -> Client:
    return await aiohttp_client(create_app(runtime))


async def post_raw(client: Client, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/events", data=body, headers=AUTH if headers is None else headers)


async def nothing_stored(eventlog: EventLog) -> bool:
    return [e async for e in eventlog.replay()] == []


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        # 1. an extra field nested 500-900 levels deep
        '{"extra": ' + nested(600) + ", " + json.dumps(raw_event("resume_requested"))[1:],
        # 3. a repo that is a list or an object
        json.dumps(raw_event("resume_requested", repo=[])),
        json.dumps(raw_event("resume_requested", repo={})),
        json.dumps([raw_event("resume_requested", repo={"a": 1})]),
        # 4. a timestamp whose conversion to UTC overflows
        json.dumps(raw_event("resume_requested", at="9999-12-31T23:59:59-23:59")),
        json.dumps(raw_event("resume_requested", at="0001-01-01T00:00:00+23:59")),
        # 5. a lone surrogate in a field or in the id
        json.dumps(raw_event("resume_requested", requested_by="\ud800")),
        json.dumps({**raw_event("resume_requested"), "id": "\ud800"}),
        json.dumps({**raw_event("resume_requested"), "note": {"\udfff": 1}}),
    ],
    ids=[
        "deep",
        "repo-list",
        "repo-object",
        "repo-object-in-list",
        "utc-overflow",
        "utc-underflow",
        "surrogate-field",
        "surrogate-id",
        "surrogate-key",
    ],
)
async def test_a_malformed_event_is_a_4xx_and_stores_nothing(
    client: Client, eventlog: EventLog, body: str
) -> None:
    resp = await post_raw(client, body.encode("utf-8", "surrogatepass"))
    assert 400 <= resp.status < 500, await resp.text()
    assert "error" in await resp.json()
    assert await nothing_stored(eventlog)


@pytest.mark.parametrize("value", ["Bearer tökén", "Bearer \u2603", "Bäsic x"])
async def test_a_non_ascii_authorization_header_is_a_401(
    client: Client, eventlog: EventLog, value: str
) -> None:
    # 2. any non-ASCII byte in the Authorization header, from an unauthenticated client
    headers = {"Authorization": value.encode().decode("latin-1")}
    resp = await post_raw(client, json.dumps(raw_event("resume_requested")).encode(), headers)
    assert resp.status == 401
    assert await nothing_stored(eventlog)


# -- limits ----------------------------------------------------------------------------------------


async def test_extra_fields_over_the_budget_are_refused_and_under_it_kept(
    client: Client, eventlog: EventLog
) -> None:
    big = raw_event("resume_requested", note="x" * (64 * 1024))
    resp = await post_raw(client, json.dumps(big).encode())
    assert resp.status == 422
    assert "at most 65536" in json.dumps(await resp.json())
    assert await nothing_stored(eventlog)

    kept = raw_event("resume_requested", note="x" * 60_000, deep={"a": {"b": [1, 2, {"c": 3}]}})
    resp = await post_raw(client, json.dumps(kept).encode())
    assert resp.status == 201
    [entry] = [e async for e in eventlog.replay()]
    assert entry.envelope.payload["deep"] == {"a": {"b": [1, 2, {"c": 3}]}}


async def test_the_extra_field_budget_is_configurable(
    aiohttp_client: MakeClient, runtime: Runtime, eventlog: EventLog
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"max_extra_field_bytes": 100})
    client = await aiohttp_client(create_app(runtime))
    resp = await post_raw(client, json.dumps(raw_event("resume_requested", n="y" * 100)).encode())
    assert resp.status == 422
    assert await nothing_stored(eventlog)


@pytest.mark.parametrize(
    "event",
    [
        raw_event("review_approved", review_round=10**40),
        raw_event("review_approved", review_round=1_000_001),
        raw_event("finalize_ready", branch="feature/\x00one"),
        raw_event("finalize_ready", branch="feature/one\x1b[31m"),
        raw_event("finalize_ready", slug="pr-1\x7f"),
        raw_event("finalize_ready", repo="acme/wid\x00gets"),
        raw_event("finalize_ready", worker_session_id="w-1\x00"),
        raw_event("review_approved", reviewer_session_id="ali\u0085ce"),
        raw_event("integration_blocked", followup_id="f\n1"),
        {**raw_event("resume_requested"), "id": "id-\x85-1"},
    ],
    ids=[
        "round-10**40",
        "round-over-limit",
        "nul-in-branch",
        "escape-in-branch",
        "del-in-slug",
        "nul-in-repo",
        "nul-in-session-id",
        "c1-in-session-id",
        "newline-in-followup-id",
        "c1-in-id",
    ],
)
async def test_unbounded_numbers_and_control_characters_are_refused(
    client: Client, eventlog: EventLog, event: dict[str, Any]
) -> None:
    resp = await post_raw(client, json.dumps(event).encode())
    assert resp.status == 422, await resp.text()
    assert await nothing_stored(eventlog)


@pytest.mark.parametrize(
    "body", [b"NaN", b'{"name": "resume_requested", "x": Infinity}', b"[1e999]"]
)
async def test_json_that_nothing_could_read_back_is_a_400(
    client: Client, eventlog: EventLog, body: bytes
) -> None:
    resp = await post_raw(client, body)
    assert resp.status == 400
    assert await nothing_stored(eventlog)
