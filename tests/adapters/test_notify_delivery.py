"""Delivery from the event log and the queue changes to the sinks: retries, Retry-After, dead
letters, crashes before acknowledging, isolation of slow sinks, one message per candidate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mergebot.events import QueueFrozen, QueueUnfrozen, envelope_for
from mergebot.main import create_app, main
from mergebot.notify.delivery import Notifier
from mergebot.queue import IntegrationRecord, Status
from mergebot.runtime import Runtime
from mergebot.store.eventlog import EventLog
from mergebot.store.notify import DeliveryState, NotifyStore, dead_letter_count
from tests.chatstandin import DISCORD_TOKEN, ChatStandIn, markdown_v2_problem, telegram_429
from tests.conftest import API_TOKEN
from tests.notifykit import REPO, Lifecycle, configure, drain, notifier, sink
from tests.waiting import until

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SHA_A = "a1" * 20
SHA_B = "b2" * 20


@pytest.fixture
async def standin() -> AsyncIterator[ChatStandIn]:
    server = await ChatStandIn().start()
    try:
        yield server
    finally:
        await server.stop()


async def _blocked_candidate(runtime: Runtime) -> Lifecycle:
    life = Lifecycle(runtime)
    await life.queued(SHA_A)
    await life.started()
    await life.blocked("merge_conflict", {"files": ["src/app.py"]})
    return life


async def test_a_500_then_success_is_delivered_once(runtime: Runtime, standin: ChatStandIn) -> None:
    configure(runtime, [sink("telegram", standin, events=["blocked"])])
    standin.fail_next("telegram", 500, {"ok": False, "error_code": 500, "description": "oops"})
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin)
    await drain(n)
    assert len(standin.to("telegram")) == 2
    assert len(standin.posted) == 1
    record = await n.store.delivery(REPO, *await _only_delivery(n))
    assert record is not None
    assert (record.state, record.attempts) == (DeliveryState.DELIVERED, 2)
    await n.close()


async def _only_delivery(n: object) -> tuple[str, str]:
    store: NotifyStore = n.store  # type: ignore[attr-defined]
    raw = await store.redis.hgetall(store.keys.notify_deliveries(REPO))
    [field] = list(raw)
    sink_key, nid = field.split(" ", 1)
    return sink_key, nid


async def test_a_429_with_retry_after_waits_then_delivers(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(runtime, [sink("telegram", standin, events=["blocked"])])
    standin.fail_next("telegram", 429, telegram_429(1), headers={"Retry-After": "1"})
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin, backoff_base=0.01)
    await drain(n)
    first, second = standin.to("telegram")
    assert second.at - first.at >= 0.95  # Retry-After honoured, not the 10 ms backoff
    assert len(standin.posted) == 1
    await n.close()


@pytest.mark.allow_error_logs
async def test_a_sink_failing_for_good_becomes_a_dead_letter_and_others_still_deliver(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(
        runtime,
        [
            sink("discord", standin, events=["blocked"]),
            sink("telegram", standin, events=["blocked"]),
        ],
    )
    standin.fail_next("discord", 500, {"message": "Internal Server Error"}, times=3)
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin, max_attempts=3)
    await drain(n)
    assert len(standin.to("discord")) == 3
    assert [service for service, _ in standin.posted] == ["telegram"]
    [letter] = await n.store.dead_letters(REPO)
    assert letter["attempts"] == 3
    assert letter["last_error"] == "HTTP 500: Internal Server Error"
    assert letter["kind"] == "blocked"
    assert await dead_letter_count(runtime.redis, runtime.keys, REPO) == 1
    # Discord is back: retrying the dead letter delivers it, and the count goes to zero.
    assert await n.store.retry_dead_letter(letter["id"]) is not None
    await drain(n)
    assert sorted(service for service, _ in standin.posted) == ["discord", "telegram"]
    assert await dead_letter_count(runtime.redis, runtime.keys, REPO) == 0
    await n.close()


@pytest.mark.allow_error_logs
async def test_a_permanent_error_is_dead_lettered_at_once(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(runtime, [sink("slack", standin, events=["blocked"])])
    standin.fail_next("slack_hook", 404, "no_service", times=5)
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin, max_attempts=5)
    await drain(n)
    assert len(standin.to("slack_hook")) == 1
    [letter] = await n.store.dead_letters()
    assert (letter["attempts"], letter["last_error"]) == (1, "HTTP 404: no_service")
    await n.close()


async def test_killed_after_fan_out_before_ack_loses_and_duplicates_nothing(
    runtime: Runtime, standin: ChatStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        runtime,
        [
            sink("telegram", standin, events=["blocked"]),
            sink("discord", standin, events=["blocked"]),
        ],
    )
    await _blocked_candidate(runtime)
    first = notifier(runtime, standin, consumer="replica-1")
    real_ack = EventLog.ack

    async def crash(*args: object, **kwargs: object) -> int:
        raise ConnectionError("killed before XACK")

    monkeypatch.setattr(EventLog, "ack", crash)
    with pytest.raises(ConnectionError):
        await first.intake_events(0)
    monkeypatch.setattr(EventLog, "ack", real_ack)
    # A new process with the same consumer name re-reads its pending entry.
    second = notifier(runtime, standin, consumer="replica-1")
    await drain(second)
    assert sorted(service for service, _ in standin.posted) == ["discord", "telegram"]
    assert (await runtime.eventlog.pending("notify", 0)).count == 0
    await first.close()
    await second.close()


async def test_killed_after_sending_before_ack_is_not_sent_again(
    runtime: Runtime, standin: ChatStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(runtime, [sink("telegram", standin, events=["blocked"])])
    await _blocked_candidate(runtime)
    first = notifier(runtime, standin, consumer="replica-1")
    await first.intake_events(0)
    real_ack = NotifyStore.ack

    async def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionError("killed before XACK")

    monkeypatch.setattr(NotifyStore, "ack", crash)
    [(repo, key)] = await first.store.outboxes()
    with pytest.raises(ConnectionError):
        await first.deliver_pass(repo, key)
    monkeypatch.setattr(NotifyStore, "ack", real_ack)
    # Another replica takes the job over once it has been idle long enough.
    second = notifier(runtime, standin, consumer="replica-2", reclaim_idle_ms=0)
    await drain(second)
    assert len(standin.to("telegram")) == 1
    assert await second.store.outbox_length(repo, key) == 0
    await first.close()
    await second.close()


async def test_the_same_notification_is_queued_once_per_sink(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(runtime, [sink("telegram", standin, events=["blocked"])])
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin)
    entry = (await runtime.eventlog.tail(limit=1))[0]
    await n.handle_event(entry.envelope)
    await n.handle_event(entry.envelope)  # redelivered after a crash, or read by a 2nd replica
    await drain(n)
    assert len(standin.posted) == 1
    await n.close()


async def test_a_sink_gets_only_the_events_it_asked_for(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(runtime, [sink("webhook", standin, events=["completed"])])
    life = await _blocked_candidate(runtime)
    await life.resumed_same_sha()
    await life.started()
    await life.completed()
    n = notifier(runtime, standin)
    await drain(n)
    assert [body["event"]["name"] for _, body in standin.posted] == ["integration_completed"]
    await n.close()


async def test_a_slow_sink_does_not_delay_the_others(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(
        runtime,
        [
            sink("discord", standin, events=["blocked"]),
            sink("telegram", standin, events=["blocked"]),
        ],
    )
    standin.fail_next("discord", 200, {"id": "555"}, delay=4.0)
    n = notifier(runtime, standin, timeout=8.0)
    stop = asyncio.Event()
    service = asyncio.create_task(n.run(stop))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _blocked_candidate(runtime)
        await until(lambda: any(s == "telegram" for s, _ in standin.posted), what="telegram")
        assert loop.time() - started < 3.0
        assert len(standin.to("discord")) == 1  # still waiting for its answer
        await until(
            lambda: bool(standin.to("discord")) and standin.to("discord")[0].at > 0,
            what="discord request",
        )
        store = n.store
        await until(lambda: _delivered_count(store, 2), timeout=15, what="both delivered")
    finally:
        stop.set()
        await service


async def test_a_stop_while_a_message_is_on_its_way_lets_it_land_and_records_it(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    """A deploy stops the notifier just after the chat received a message: the answer is
    awaited and recorded, so the next notifier does not post the message a second time."""
    configure(runtime, [sink("telegram", standin, events=["blocked"])])
    standin.fail_next("telegram", 200, {"ok": True, "result": {"message_id": 77}}, delay=0.5)
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin)
    stop = asyncio.Event()
    service = asyncio.create_task(n.run(stop))
    await until(lambda: len(standin.to("telegram")) == 1, what="the send")
    stop.set()  # what `serve` does on SIGTERM: set the stop event, then cancel its services
    service.cancel()
    await asyncio.wait_for(asyncio.gather(service, return_exceptions=True), timeout=10)
    assert await _delivered_count(n.store, 1)
    [(repo, key)] = await n.store.outboxes()
    assert await n.store.outbox_length(repo, key) == 0
    after_restart = notifier(runtime, standin)
    await drain(after_restart)
    await after_restart.close()
    assert len(standin.to("telegram")) == 1


async def test_a_stop_does_not_wait_beyond_its_grace_for_a_sink_that_hangs(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    """A sink that does not answer cannot hold a shutdown: after the grace the send is cut off,
    stays pending, and the next notifier delivers it."""
    configure(runtime, [sink("telegram", standin, events=["blocked"])])
    standin.fail_next("telegram", 200, {"ok": True, "result": {"message_id": 77}}, delay=30)
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin, timeout=60.0, stop_grace_seconds=0.2)
    stop = asyncio.Event()
    service = asyncio.create_task(n.run(stop))
    await until(lambda: len(standin.to("telegram")) == 1, what="the send")
    stop.set()
    await asyncio.wait_for(service, timeout=5)
    assert standin.posted == []
    after_restart = notifier(runtime, standin)
    await drain(after_restart)
    await after_restart.close()
    assert [service for service, _ in standin.posted] == ["telegram"]


async def _delivered_count(store: NotifyStore, expected: int) -> bool:
    raw = await store.redis.hgetall(store.keys.notify_deliveries(REPO))
    return sum('"delivered"' in v for v in raw.values()) == expected


async def test_one_message_per_candidate_edited_through_its_lifecycle(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(
        runtime,
        [sink("telegram", standin), sink("discord", standin), sink("slack", standin)],
    )
    n = notifier(runtime, standin)
    try:
        await _lifecycle(n, runtime, standin)
    finally:
        await n.close()


async def _lifecycle(n: Notifier, runtime: Runtime, standin: ChatStandIn) -> None:
    life = Lifecycle(runtime)
    steps = []

    async def step(label: str) -> None:
        await drain(n)
        [tg] = [m["text"] for k, m in standin.messages.items() if k.startswith("telegram:")]
        steps.append((label, tg.splitlines()[0]))

    await life.queued(SHA_A)
    await step("queued")
    await life.started()
    await step("started")
    await life.blocked("checks_failed", {"checks": [{"name": "tests", "state": "failure"}]})
    await step("blocked")
    await life.fixed_and_resumed(SHA_B)
    await step("queued again")
    await life.started()
    await step("started again")
    await life.completed()
    await step("completed")
    assert [first for _, first in steps] == [
        "⏳ *acme/widgets pr\\-42*: queued for main",
        "🔄 *acme/widgets pr\\-42*: integrating into main",
        "⛔ *acme/widgets pr\\-42*: *blocked*: checks failed",
        "⏳ *acme/widgets pr\\-42*: queued for main",
        "🔄 *acme/widgets pr\\-42*: integrating into main",
        f"✅ *acme/widgets pr\\-42*: integrated into main as `{life.main[:7]}`",
    ]
    # Telegram and Discord: one message each, edited; every text is valid MarkdownV2.
    assert sorted(s for s, _ in standin.posted if s != "slack_hook") == ["discord", "telegram"]
    edits = [r for r in standin.to("telegram") if r.path.endswith("editMessageText")]
    assert len(edits) == 6  # started, blocked, superseded, queued, started, completed
    assert all(markdown_v2_problem(r.json["text"]) is None for r in standin.to("telegram"))
    [discord] = [m for k, m in standin.messages.items() if k.startswith("discord:")]
    assert discord["embeds"][0]["title"].startswith("✅")
    # Slack's incoming webhook cannot edit: a new message each time, naming the previous state.
    slack = [body["blocks"] for s, body in standin.posted if s == "slack_hook"]
    assert len(slack) == 7
    context = slack[2][-1]["elements"][0]["text"]
    assert context.startswith("Previously: started")


async def test_a_rebuilt_car_s_new_place_edits_its_started_message_where_a_sink_can_edit(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    configure(runtime, [sink("telegram", standin), sink("slack", standin)])
    n = notifier(runtime, standin)
    try:
        life = Lifecycle(runtime)
        await life.queued(SHA_A)
        place = IntegrationRecord(car=2, stacked_on="pr-41")
        await life.queue.transition(REPO, "main", life.item_id, Status.IN_PROGRESS,
                                    cause="picked", integration=place)  # fmt: skip
        await drain(n)
        [tg] = [m["text"] for k, m in standin.messages.items() if k.startswith("telegram:")]
        assert "as car 2 of the train, on top of pr\\-41" in tg
        hooks = len([s for s, _ in standin.posted if s == "slack_hook"])

        # pr-41 failed: the car is rebuilt on base (the integrator records its new place).
        moved = IntegrationRecord(car=1, stacked_on="base")
        await life.queue.annotate(REPO, "main", life.item_id, moved, expect=Status.IN_PROGRESS,
                                  cause="rebuilt as car 1 on base")  # fmt: skip
        await drain(n)
        [tg] = [m["text"] for k, m in standin.messages.items() if k.startswith("telegram:")]
        assert tg.splitlines()[0] == "🔄 *acme/widgets pr\\-42*: integrating into main"
        assert "car 2" not in tg
        # Slack's incoming webhook cannot edit: the rebuild is not posted as a new message.
        assert len([s for s, _ in standin.posted if s == "slack_hook"]) == hooks
    finally:
        await n.close()


@pytest.mark.allow_error_logs
async def test_dead_letters_are_listed_and_retried_through_the_api_and_the_cli(
    runtime: Runtime,
    standin: ChatStandIn,
    aiohttp_client: Any,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(runtime, [sink("discord", standin, events=["blocked"])])
    standin.fail_next("discord", 403, {"message": "Missing Access", "code": 50001})
    await _blocked_candidate(runtime)
    n = notifier(runtime, standin)
    await drain(n)
    client = await aiohttp_client(create_app(runtime))
    assert (await client.get("/api/dead-letters")).status == 401
    listed = await (await client.get("/api/dead-letters", headers=AUTH)).json()
    [letter] = listed["dead_letters"]
    assert letter["last_error"] == "HTTP 403: Missing Access"
    assert DISCORD_TOKEN not in json.dumps(letter)
    # The CLI shows it, and `mergebot status` counts it.
    assert await asyncio.to_thread(main, ["dead-letters"]) == 0
    assert letter["id"] in capsys.readouterr().out
    assert await dead_letter_count(runtime.redis, runtime.keys) == 1
    retried = await client.post(f"/api/dead-letters/{letter['id']}/retry", headers=AUTH)
    assert retried.status == 200
    assert (await client.post("/api/dead-letters/nope/retry", headers=AUTH)).status == 404
    await drain(n)
    assert [s for s, _ in standin.posted] == ["discord"]
    assert await asyncio.to_thread(main, ["dead-letters", "--retry", "nope"]) == 1
    await n.close()


async def test_a_red_base_is_told_once_and_its_reopening_edits_the_message(
    runtime: Runtime, standin: ChatStandIn
) -> None:
    """A sink with the default events hears that the queue closed (which check, which sha) once,
    however often the integrator meets the red base, and the same message says it reopened."""
    configure(runtime, [{"sink": "telegram", "token_env": "TG_TOKEN",
                         "chat_id": "-1001234567890", "api_url": standin.url}])  # fmt: skip
    closed = envelope_for(
        QueueFrozen(
            repo=REPO, base="main", reason=f"main is red: unit tests failed on {SHA_A[:7]}",
            by="mergebot", at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC), kind="clearance",
            sha=SHA_A, check="unit tests",
        ),
        source="mergebot", event_id=f"clearance-closed:main:{SHA_A}",
    )  # fmt: skip
    for _ in range(2):
        await runtime.eventlog.append(closed)
    opened = envelope_for(
        QueueUnfrozen(
            repo=REPO, base="main", by="mergebot", at=datetime(2026, 11, 25, 10, 5, tzinfo=UTC),
            kind="clearance", sha=SHA_B,
        ),
        source="mergebot", event_id=f"clearance-opened:main:{SHA_A}:{SHA_B}",
    )  # fmt: skip
    n = notifier(runtime, standin)
    await drain(n)
    [posted] = standin.posted
    assert "main is frozen" in posted[1]["text"]
    assert f"`unit tests` failed on `main` at `{SHA_A[:7]}`" in posted[1]["text"]
    await runtime.eventlog.append(opened)
    await drain(n)
    assert len(standin.posted) == 1
    [shown] = standin.messages.values()  # the one message, edited
    assert "main is open again" in shown["text"]
    assert f"is green again at `{SHA_B[:7]}`" in shown["text"]
    await n.close()
