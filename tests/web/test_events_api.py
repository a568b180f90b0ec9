"""POST /events against real Redis: every answer of SPEC §9, with the event log checked after."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mergebot.config import ServerConfig
from mergebot.events import content_id, parse_event
from mergebot.main import create_app
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import connect
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from mergebot.store.refusals import RefusalLog
from mergebot.web.app import MAX_BODY_BYTES
from tests.conftest import API_TOKEN, settings_for
from tests.factories import SHA_A, raw_event

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: MakeClient, runtime: Runtime) -> Client:
    return await aiohttp_client(create_app(runtime))


async def stored(eventlog: EventLog) -> list[dict[str, Any]]:
    return [entry.envelope.model_dump(mode="json") async for entry in eventlog.replay()]


async def post(client: Client, body: object, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/events", json=body, headers=AUTH if headers is None else headers)


def metric(text: str, sample_name: str, **labels: str) -> float:
    """The sum of the samples of `sample_name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


# -- happy path ------------------------------------------------------------------------------------


async def test_one_event_is_stored_with_an_envelope(client: Client, eventlog: EventLog) -> None:
    event = raw_event("review_approved", approved_at="2026-11-25T12:00:00+02:00")
    resp = await post(client, event)
    assert resp.status == 201
    body = await resp.json()
    [envelope] = await stored(eventlog)
    assert body == {"stored": [{"id": envelope["id"], "duplicate": False}]}
    assert envelope["name"] == "review_approved"
    assert envelope["type"] == "domain.software-development.review.approved"
    assert envelope["source"] == "api"
    assert envelope["payload"]["approved_at"] == "2026-11-25T10:00:00Z"  # normalized to UTC
    expected_id = content_id(parse_event(event).event.event_name, envelope["payload"])
    assert envelope["id"] == expected_id


async def test_a_list_is_stored_and_answered_in_request_order(
    client: Client, eventlog: EventLog
) -> None:
    events = [
        raw_event("finalize_ready", id="fin-1"),
        raw_event("branch_pushed", id="push-1"),
        raw_event("review_approved", id="appr-1", extra_field="kept"),
    ]
    resp = await post(client, events)
    assert resp.status == 201
    assert await resp.json() == {
        "stored": [
            {"id": "fin-1", "duplicate": False},
            {"id": "push-1", "duplicate": False},
            {"id": "appr-1", "duplicate": False},
        ]
    }
    log = await stored(eventlog)
    assert [e["id"] for e in log] == ["fin-1", "push-1", "appr-1"]
    assert log[2]["payload"]["extra_field"] == "kept"


async def test_the_same_id_and_payload_again_is_a_duplicate_stored_once(
    client: Client, eventlog: EventLog
) -> None:
    event = raw_event("review_approved", id="appr-1")
    assert (await post(client, event)).status == 201
    resp = await post(client, [event, raw_event("resume_requested", id="res-1")])
    assert resp.status == 201
    assert (await resp.json())["stored"] == [
        {"id": "appr-1", "duplicate": True},
        {"id": "res-1", "duplicate": False},
    ]
    assert [e["id"] for e in await stored(eventlog)] == ["appr-1", "res-1"]


async def test_an_event_without_id_sent_twice_is_a_duplicate(
    client: Client, eventlog: EventLog
) -> None:
    first = await (await post(client, raw_event("branch_pushed"))).json()
    again = await (await post(client, raw_event("branch_pushed"))).json()
    assert again["stored"] == [{"id": first["stored"][0]["id"], "duplicate": True}]
    assert len(await stored(eventlog)) == 1


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "longer", "other-scheme", "empty"],
)
async def test_a_missing_or_wrong_token_is_401_and_stores_nothing(
    client: Client, eventlog: EventLog, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    resp = await post(client, raw_event("review_approved"), headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in (await resp.json())["error"]
    assert await stored(eventlog) == []
    assert API_TOKEN not in caplog.text
    assert "wrong-token" not in caplog.text


async def test_the_api_is_refused_with_503_when_no_token_is_configured(
    aiohttp_client: MakeClient, runtime: Runtime, eventlog: EventLog, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, api_token=None)
    app = create_app(build_runtime(settings, runtime.server_config, runtime.redis, runtime.keys))
    client = await aiohttp_client(app)
    for headers in ({}, AUTH):
        resp = await post(client, raw_event("review_approved"), headers=headers)
        assert resp.status == 503
        assert "MERGEBOT_API_TOKEN" in (await resp.json())["error"]
    assert await stored(eventlog) == []


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b'{"name": "review_approved",', b"\xff\xfe\x00", b"[" * 100_000]
)
async def test_a_body_that_is_not_json_is_400_and_stores_nothing(
    client: Client, eventlog: EventLog, raw: bytes
) -> None:
    resp = await client.post("/events", data=raw, headers=AUTH)
    assert resp.status == 400
    assert "not valid JSON" in (await resp.json())["error"]
    assert await stored(eventlog) == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({k: v for k, v in raw_event("finalize_ready").items() if k != "sha"}, ["sha"]),
        (raw_event("finalize_ready", sha="ABC"), ["sha"]),
        (raw_event("review_approved", approved_at="2026-11-25T10:00:00"), ["approved_at"]),
        ({**raw_event("review_approved"), "name": "review_exploded"}, ["name"]),
        (raw_event("review_approved", review_round="1"), ["review_round"]),
        (raw_event("review_approved", review_round=True), ["review_round"]),
        (raw_event("review_approved", review_round=0), ["review_round"]),
        (raw_event("review_approved", reviewer_session_id="   "), ["reviewer_session_id"]),
        (raw_event("integration_completed", checks="none"), ["checks"]),
        ("review_approved", []),
        (42, []),
        ([], []),
    ],
    ids=[
        "missing-field", "bad-sha", "naive-timestamp", "unknown-name", "string-int",
        "bool-int", "round-zero", "blank-string", "wrong-json-type", "json-string",
        "json-number", "empty-list",
    ],
)  # fmt: skip
async def test_an_invalid_event_is_422_naming_the_field_and_stores_nothing(
    client: Client, eventlog: EventLog, body: object, loc: list[str]
) -> None:
    resp = await post(client, body)
    assert resp.status == 422
    answer = await resp.json()
    assert answer["error"].startswith("invalid event")
    assert loc in [e["loc"] for e in answer["errors"]]
    assert all({"loc", "msg", "type"} <= e.keys() for e in answer["errors"])
    assert await stored(eventlog) == []


async def test_every_problem_of_an_event_is_reported_at_once(client: Client) -> None:
    body = raw_event("finalize_ready", sha="nope", ready_at="yesterday", branch="bad..branch")
    resp = await post(client, body)
    assert resp.status == 422
    locs = [e["loc"] for e in (await resp.json())["errors"]]
    assert ["sha"] in locs
    assert ["ready_at"] in locs
    assert ["branch"] in locs


async def test_a_list_with_one_bad_item_is_422_with_its_index_and_stores_nothing(
    client: Client, eventlog: EventLog
) -> None:
    body = [
        raw_event("branch_pushed", id="good-1"),
        raw_event("review_approved", id="bad-1", sha="xyz"),
        raw_event("resume_requested", id="good-2"),
    ]
    resp = await post(client, body)
    assert resp.status == 422
    errors = (await resp.json())["errors"]
    assert [(e["index"], e["loc"]) for e in errors] == [(1, ["sha"])]
    assert await stored(eventlog) == []


async def test_the_same_id_with_another_payload_is_409_and_the_stored_event_unchanged(
    client: Client, eventlog: EventLog
) -> None:
    assert (await post(client, raw_event("review_approved", id="appr-1"))).status == 201
    before = await stored(eventlog)
    changed = raw_event("review_approved", id="appr-1", review_round=2)
    resp = await post(client, [raw_event("resume_requested", id="new-1"), changed])
    assert resp.status == 409
    answer = await resp.json()
    assert answer["id"] == "appr-1"
    assert "different payload" in answer["error"]
    assert await stored(eventlog) == before  # nothing new, the old one untouched


async def test_a_body_over_the_size_limit_is_413_and_stores_nothing(
    client: Client, eventlog: EventLog
) -> None:
    resp = await client.post("/events", data=io.BytesIO(b" " * (MAX_BODY_BYTES + 1)), headers=AUTH)
    assert resp.status == 413
    assert await stored(eventlog) == []


@pytest.mark.allow_error_logs
async def test_redis_unreachable_is_503_never_2xx(
    aiohttp_client: MakeClient, runtime: Runtime, eventlog: EventLog, keys: Keys
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    dead = connect(f"redis://127.0.0.1:{closed_port}/0", timeout=1)
    try:
        app = create_app(build_runtime(runtime.settings, ServerConfig({}, {}), dead, keys))
        client = await aiohttp_client(app)
        for body in (raw_event("review_approved"), [raw_event("branch_pushed")]):
            resp = await post(client, body)
            assert resp.status == 503
            assert "nothing was stored" in (await resp.json())["error"]
        assert (await client.get("/readyz")).status == 503
        metrics = await (await client.get("/metrics")).text()
        assert metric(metrics, "mergebot_events_refused_total", status="503") == 2
    finally:
        await dead.aclose()
    assert await stored(eventlog) == []  # and the real server never saw anything either


# -- visibility of refusals ------------------------------------------------------------------------


async def test_refusals_are_logged_and_authenticated_ones_recorded(
    client: Client, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await post(client, raw_event("review_approved", repo="acme/gadgets", sha="xyz"))
    await post(client, raw_event("review_approved"), headers={"Authorization": "Bearer nope"})
    [refusal] = await RefusalLog(runtime.redis, runtime.keys).recent()
    assert (refusal.status, refusal.reason, refusal.repos) == (422, "invalid", ["acme/gadgets"])
    assert refusal.errors[0]["loc"] == ["sha"]
    assert await RefusalLog(runtime.redis, runtime.keys).total() == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("status=422" in w for w in warnings)
    assert any("status=401" in w for w in warnings)
    assert "nope" not in caplog.text


async def test_metrics_count_accepted_duplicate_and_refused_events(client: Client) -> None:
    await post(client, [raw_event("review_approved", id="a"), raw_event("branch_pushed", id="b")])
    await post(client, raw_event("review_approved", id="a"))
    await post(client, [raw_event("review_approved", sha="bad"), {"name": "x" * 500}])
    await post(client, raw_event("review_approved"), headers={})
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    accepted = "mergebot_events_accepted_total"
    assert metric(text, accepted, source="api", name="review_approved") == 1
    assert metric(text, accepted, source="api", name="branch_pushed") == 1
    assert metric(text, "mergebot_events_duplicate_total", name="review_approved") == 1
    refused = "mergebot_events_refused_total"
    assert metric(text, refused, name="review_approved", status="422", reason="invalid") == 1
    assert metric(text, refused, name="unknown", status="422") == 1  # a hostile name is not a label
    assert metric(text, refused, status="401", reason="unauthorized") == 1
    assert metric(text, "mergebot_http_requests_total", route="/events", status="201") == 2
    assert "x" * 500 not in text


async def test_each_app_has_its_own_metrics(aiohttp_client: MakeClient, runtime: Runtime) -> None:
    first = await aiohttp_client(create_app(runtime))
    second = await aiohttp_client(create_app(runtime))
    await post(first, raw_event("review_approved", id="only-first"))
    text = await (await second.get("/metrics")).text()
    assert metric(text, "mergebot_events_accepted_total", name="review_approved") == 0
    assert json.dumps(SHA_A) not in text
