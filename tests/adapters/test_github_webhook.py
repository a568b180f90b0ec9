"""`POST /webhook` against real Redis: what is stored, and that bad input changes nothing."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.config import ServerConfig, Settings, parse_server_config
from mergebot.github.intake import perform
from mergebot.github.translate import translate
from mergebot.main import create_app
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.commands import CommandInbox
from mergebot.store.connection import RedisClient, connect, subscribe
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from mergebot.store.refusals import RefusalLog
from mergebot.web.app import MAX_BODY_BYTES
from tests import ghsupport as gh
from tests.ghsupport import BASE, HEAD, REPO, SECRET

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def server_config() -> ServerConfig:
    return parse_server_config(gh.SERVER_TOML, "mergebot.toml")


@pytest.fixture
async def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    redis: RedisClient,
    keys: Keys,
) -> MakeClient:
    async def make(
        *,
        secret: str | None = SECRET,
        config: ServerConfig | None = None,
        client_redis: RedisClient | None = None,
    ) -> Client:
        settings = Settings(webhook_secret=secret)
        runtime = build_runtime(settings, config or server_config(), client_redis or redis, keys)
        return await aiohttp_client(create_app(runtime))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


async def post(
    client: Client,
    event: str,
    payload: Any,
    delivery: str = "d-1",
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    body = payload if isinstance(payload, bytes) else gh.body_of(payload)
    sent = {**gh.signed_headers(event, body, delivery), **(headers or {})}
    sent = {k: v for k, v in sent.items() if v}
    data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    response = await client.post("/webhook", data=data, headers=sent)
    return response.status, await response.json()


async def snapshot(eventlog: EventLog) -> list[tuple[str, str]]:
    return [(e.entry_id, e.envelope.to_json()) async for e in eventlog.replay()]


@pytest.fixture
async def seeded(client: Client, eventlog: EventLog) -> list[tuple[str, str]]:
    """The log after one valid delivery, to compare with after a bad request."""
    status, _ = await post(client, "pull_request", gh.load("pull_request.opened"), "seed")
    assert status == 200
    before = await snapshot(eventlog)
    assert len(before) == 2
    return before


async def test_opened_pull_request_is_stored_under_delivery_ids(
    client: Client, eventlog: EventLog
) -> None:
    status, body = await post(client, "pull_request", gh.load("pull_request.opened"), "abc-123")
    assert status == 200
    assert body["stored"] == [
        {"id": "abc-123:0", "duplicate": False},
        {"id": "abc-123:1", "duplicate": False},
    ]
    stored = [e.envelope async for e in eventlog.replay()]
    assert [(e.id, e.name, e.source) for e in stored] == [
        ("abc-123:0", "branch_pushed", "github"),
        ("abc-123:1", "finalize_ready", "github"),
    ]
    expected = translate("pull_request", gh.load("pull_request.opened"), lambda r: BASE)
    assert [e.payload for e in stored] == [
        ev.model_dump(mode="json")  # type: ignore[union-attr]
        for ev in expected.events
    ]
    assert stored[1].type == "domain.software-development.deployment.started"


async def test_redelivery_is_stored_once(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    status, body = await post(client, "pull_request", gh.load("pull_request.opened"), "seed")
    assert status == 200
    assert [s["duplicate"] for s in body["stored"]] == [True, True]
    assert await snapshot(eventlog) == seeded


async def test_missing_signature_is_refused_and_nothing_stored(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    status, body = await post(
        client, "push", gh.load("push.branch_created"), "d-2", headers={"X-Hub-Signature-256": ""}
    )
    assert status == 401
    assert body["message"] == "missing X-Hub-Signature-256"
    assert await snapshot(eventlog) == seeded


@pytest.mark.parametrize(
    "forged",
    [
        "sha256=" + "0" * 64,
        "sha1=0123",
        "sha256=é",
        gh.sign(b"another-secret", gh.body_of(gh.load("push.branch_created"))),
    ],
)
async def test_forged_signature_is_refused_and_nothing_stored(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]], forged: str
) -> None:
    status, body = await post(
        client,
        "push",
        gh.load("push.branch_created"),
        "d-2",
        headers={"X-Hub-Signature-256": forged},
    )
    assert status == 401
    assert body["status"] == "unauthorized"
    assert await snapshot(eventlog) == seeded


async def test_a_body_changed_after_signing_is_refused(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    signed = gh.body_of(gh.load("push.branch_created"))
    headers = gh.signed_headers("push", signed, "d-2")
    tampered = signed.replace(b"Codertocat", b"Mallory000", 1)
    response = await client.post("/webhook", data=tampered, headers=headers)
    assert response.status == 401
    assert await snapshot(eventlog) == seeded


async def test_without_a_configured_secret_every_webhook_is_refused(
    make_client: MakeClient, eventlog: EventLog
) -> None:
    client = await make_client(secret=None)
    status, body = await post(client, "push", gh.load("push.branch_created"))
    assert status == 401
    assert body["message"] == "no webhook secret is configured on this server"
    assert await snapshot(eventlog) == []


async def test_body_over_25_mb_is_refused_and_nothing_stored(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    big = b'{"zen": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, body = await post(client, "push", big, "d-big")
    assert status == 413
    assert "larger than 25 MB" in body["message"]
    assert await snapshot(eventlog) == seeded


async def test_body_over_25_mb_without_a_length_is_refused_while_reading(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    big = b'{"zen": "' + b"x" * MAX_BODY_BYTES + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1024 * 1024):
            yield big[start : start + 1024 * 1024]

    headers = gh.signed_headers("push", big, "d-big2")
    response = await client.post("/webhook", data=chunks(), headers=headers)
    assert response.status == 413
    assert await snapshot(eventlog) == seeded


async def test_body_that_is_not_json_is_refused_and_nothing_stored(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    status, body = await post(client, "push", b"ref=refs/heads/main&after=abc", "d-3")
    assert status == 400
    assert body["message"] == "the body is not JSON"
    assert await snapshot(eventlog) == seeded


async def test_json_that_is_not_a_usable_payload_is_refused_and_nothing_stored(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    status, body = await post(client, "pull_request", {"action": "opened"}, "d-4")
    assert status == 400
    assert "pull_request: Field required" in body["problems"]
    assert await snapshot(eventlog) == seeded


async def test_missing_delivery_id_is_refused(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]]
) -> None:
    status, body = await post(
        client, "push", gh.load("push.branch_created"), headers={"X-GitHub-Delivery": ""}
    )
    assert status == 400
    assert body["message"] == "missing or malformed X-GitHub-Delivery"
    assert await snapshot(eventlog) == seeded


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("star", {"action": "created", "repository": {"full_name": REPO}}),
        ("pull_request", gh.load("pull_request.labeled")),
        ("push", gh.load("push.tag_created")),
        ("issue_comment", gh.load("issue_comment.edited")),
        # An event name with a digit in it: GitHub sends these to organisation webhooks.
        (
            "projects_v2_item",
            {"action": "edited", "projects_v2_item": {"id": 1, "content_type": "Issue"}},
        ),
    ],
)
async def test_unknown_events_and_actions_are_acknowledged_and_not_stored(
    client: Client, eventlog: EventLog, seeded: list[tuple[str, str]], event: str, payload: Any
) -> None:
    status, body = await post(client, event, payload, "d-5")
    assert status == 202
    assert body["status"] == "ignored"
    assert body["message"]
    assert await snapshot(eventlog) == seeded


async def test_redis_down_answers_503_and_stores_nothing(
    make_client: MakeClient, eventlog: EventLog
) -> None:
    dead = connect("redis://127.0.0.1:1/0", timeout=1.0)
    try:
        client = await make_client(client_redis=dead)
        for event, payload in [
            ("pull_request", gh.load("pull_request.opened")),
            ("pull_request_review", gh.review("approved")),
            ("issue_comment", gh.pr_comment("/mergebot merge")),
            ("check_run", gh.load("check_run.completed")),
        ]:
            status, body = await post(client, event, payload, f"d-{event}")
            assert status == 503, event
            assert body["message"] == "the event log is unavailable; nothing was stored"
    finally:
        await dead.aclose()
    assert await snapshot(eventlog) == []


async def test_ping_is_answered(client: Client, eventlog: EventLog) -> None:
    status, body = await post(client, "ping", gh.load("ping"), "d-ping")
    assert status == 200
    assert body["status"] == "pong"
    assert body["zen"] == gh.load("ping")["zen"]
    assert await snapshot(eventlog) == []


async def test_events_of_unmanaged_repos_are_stored(
    make_client: MakeClient, eventlog: EventLog
) -> None:
    client = await make_client(config=ServerConfig({}, {}))
    status, _ = await post(client, "push", gh.load("push.branch_created"), "d-u")
    assert status == 200
    [entry] = [e async for e in eventlog.replay()]
    assert entry.envelope.repo == REPO
    assert entry.envelope.payload["branch"] == "master"


async def test_each_approval_of_a_reviewer_is_the_next_round_and_redelivery_keeps_it(
    client: Client, eventlog: EventLog
) -> None:
    first = gh.review("approved")
    second = gh.review("approved")
    second["review"]["id"] += 1
    other = gh.review("approved")
    other["review"]["id"] += 2
    other["review"]["user"]["login"] = "Octocat"
    for delivery, payload in [("r1", first), ("r2", second), ("r1", first), ("r3", other)]:
        status, _ = await post(client, "pull_request_review", payload, delivery)
        assert status == 200
    stored = [e.envelope async for e in eventlog.replay()]
    assert [
        (e.id, e.payload["reviewer_session_id"], e.payload["review_round"]) for e in stored
    ] == [
        ("r1:0", "Codertocat", 1),
        ("r2:0", "Codertocat", 2),
        ("r3:0", "Octocat", 1),
    ]
    assert {e.payload["sha"] for e in stored} == {HEAD}


async def test_command_comment_is_queued_once_and_stores_no_event(
    client: Client, eventlog: EventLog, redis: RedisClient, keys: Keys
) -> None:
    payload = gh.pr_comment("/mergebot merge")
    status, body = await post(client, "issue_comment", payload, "c-1")
    assert (status, body["command"]) == (200, "queued")
    for delivery in ("c-1", "c-2"):  # a redelivery, and the same comment in another delivery
        status, body = await post(client, "issue_comment", payload, delivery)
        assert (status, body["command"]) == (200, "duplicate")
    inbox = CommandInbox(redis, keys)
    assert await inbox.length() == 1
    assert await snapshot(eventlog) == []


async def test_check_reports_publish_a_wake_up_for_the_commit(
    client: Client, eventlog: EventLog, redis: RedisClient, keys: Keys, redis_url: str
) -> None:
    listener = connect(redis_url)
    pubsub = await subscribe(listener, keys.check_signals(REPO))
    try:
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        for event, fixture in [
            ("check_run", "check_run.completed"),
            ("check_suite", "check_suite.completed"),
            ("status", "status"),
        ]:
            status, body = await post(client, event, gh.load(fixture), f"d-{event}")
            # Acknowledged, not stored: the answer must not claim a storage that did not happen.
            assert (status, body["status"]) == (202, "acknowledged")
            message = await _next_message(pubsub)
            assert message == body["signalled"]
    finally:
        await pubsub.aclose()
        await listener.aclose()
    assert await snapshot(eventlog) == []


async def _next_message(pubsub: Any, deadline: float = 5.0) -> str:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            return str(message["data"])
    raise AssertionError("no check signal was published")


async def test_intake_refuses_nothing_it_was_not_given(
    make_client: MakeClient, eventlog: EventLog
) -> None:
    """The webhook's answer lists exactly what the log holds (what 2xx promises)."""
    client = await make_client()
    status, body = await post(client, "push", gh.feature_push(), "p-1")
    assert status == 200
    stored = [e.envelope.id async for e in eventlog.replay()]
    assert [s["id"] for s in body["stored"]] == stored == ["p-1:0"]


async def test_perform_is_usable_without_the_web_tier(
    redis: RedisClient, keys: Keys, eventlog: EventLog
) -> None:
    runtime = Runtime(Settings(), server_config(), redis, keys, eventlog)
    translation = translate("push", gh.feature_push(), lambda r: BASE)
    result = await perform(runtime, translation, id_prefix="x")
    assert json.loads(json.dumps(result.as_json())) == {
        "stored": [{"id": "x:0", "duplicate": False}]
    }


async def test_refusals_of_signed_deliveries_are_recorded_and_forged_ones_only_counted(
    client: Client, redis: RedisClient, keys: Keys
) -> None:
    await post(client, "push", b"{oops", "d-bad")
    await post(client, "push", gh.load("push.branch_created"), "d-f", headers={
        "X-Hub-Signature-256": "sha256=" + "0" * 64
    })  # fmt: skip
    [refusal] = await RefusalLog(redis, keys).recent()
    assert (refusal.source, refusal.status, refusal.reason) == ("github", 400, "not_json")
    assert refusal.event_ids == ["d-bad"]
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert any(
        line.startswith("mergebot_events_refused_total{")
        and 'reason="bad_signature"' in line
        and line.endswith(" 1.0")
        for line in metrics
    )


async def test_stored_events_are_counted_by_name(client: Client) -> None:
    await post(client, "pull_request_review", gh.review("approved"), "m-1")
    await post(client, "pull_request_review", gh.review("approved"), "m-1")
    text = await (await client.get("/metrics")).text()
    assert 'mergebot_events_accepted_total{name="review_approved",source="github"} 1.0' in text
    assert 'mergebot_events_duplicate_total{name="review_approved",source="github"} 1.0' in text
