"""Comment commands end to end on real Redis: webhook translation → inbox → worker → log/forge.

The forge is a fake (permission table + recorded comments); everything else is real.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from mergebot.config import ServerConfig, Settings, parse_server_config
from mergebot.forge.base import CommentKind, Permission
from mergebot.github import command_worker
from mergebot.github.command_worker import Outcome, drain
from mergebot.github.intake import perform
from mergebot.github.translate import translate
from mergebot.main import background_services
from mergebot.queue import QueueItem, Status
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.commands import CommandInbox
from mergebot.store.connection import RedisClient
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from mergebot.store.queue import QueueStore
from tests import ghsupport as gh
from tests.ghsupport import BASE, HEAD, REPO, FakeForge
from tests.waiting import until

NEWER = "f" * 40


@pytest.fixture
def forge() -> FakeForge:
    return FakeForge(permissions={"Codertocat": Permission.WRITE, "reader": Permission.READ})


def make_runtime(
    redis: RedisClient, keys: Keys, forge: FakeForge | None, config: ServerConfig | None = None
) -> Runtime:
    config = config or parse_server_config(gh.SERVER_TOML, "mergebot.toml")
    runtime = build_runtime(Settings(), config, redis, keys)
    if forge is not None:
        runtime.forge_override = lambda repo: forge
    return runtime


@pytest.fixture
def runtime(redis: RedisClient, keys: Keys, forge: FakeForge) -> Runtime:
    return make_runtime(redis, keys, forge)


async def deliver(runtime: Runtime, event: str, payload: dict[str, Any], delivery: str) -> None:
    translation = translate(event, payload, lambda repo: BASE)
    await perform(runtime, translation, id_prefix=delivery)


async def comment(runtime: Runtime, body: str, delivery: str = "c-1", **kw: Any) -> None:
    await deliver(runtime, "issue_comment", gh.pr_comment(body, **kw), delivery)


async def snapshot(eventlog: EventLog) -> list[tuple[str, str]]:
    return [(e.entry_id, e.envelope.to_json()) async for e in eventlog.replay()]


@pytest.fixture
async def opened(runtime: Runtime) -> list[tuple[str, str]]:
    await deliver(runtime, "pull_request", gh.load("pull_request.opened"), "pr-open")
    return await snapshot(runtime.eventlog)


async def test_merge_by_a_writer_approves_the_head_and_queues_it_once(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await comment(runtime, "Ship it!\n\n/mergebot merge")
    assert await drain(runtime, "w1") == [Outcome.ACTED]
    after = [e.envelope async for e in runtime.eventlog.replay()]
    added = after[len(opened) :]
    assert [(e.id, e.name, e.source) for e in added] == [
        ("github-comment-492700400:0", "review_approved", "github"),
        ("github-comment-492700400:1", "finalize_ready", "github"),
    ]
    assert added[0].payload == {
        "repo": REPO,
        "slug": "pr-2",
        "approved_at": "2019-05-15T15:25:00Z",
        "review_round": 1,
        "reviewer_session_id": "Codertocat",
        "sha": HEAD,
        "comment_id": 492700400,
        "via": "command",
    }
    assert added[1].payload == {
        "repo": REPO,
        "slug": "pr-2",
        "branch": "changes",
        "sha": HEAD,
        "worker_session_id": "Codertocat",
        "orchestrator_session_id": "github",
        "ready_at": "2019-05-15T15:25:00Z",
        "base": BASE,
        "via": "command",
        "comment_id": 492700400,
    }
    assert forge.permission_calls == [(REPO, "Codertocat")]
    assert forge.comments == []
    # Redelivered (same delivery) and delivered again (another delivery): nothing more happens.
    stored = await snapshot(runtime.eventlog)
    await comment(runtime, "Ship it!\n\n/mergebot merge", "c-1")
    await comment(runtime, "Ship it!\n\n/mergebot merge", "c-2")
    assert await drain(runtime, "w1") == []
    assert await snapshot(runtime.eventlog) == stored
    assert forge.permission_calls == [(REPO, "Codertocat")]


async def test_a_command_run_twice_after_a_crash_still_acts_once(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await comment(runtime, "/mergebot merge")
    request = translate("issue_comment", gh.pr_comment("/mergebot merge"), lambda r: BASE).command
    assert request is not None
    assert await command_worker.execute(runtime, request) is Outcome.ACTED
    stored = await snapshot(runtime.eventlog)
    # The worker died before acknowledging: the entry is handled again.
    assert await drain(runtime, "w2") == [Outcome.ACTED]
    assert await snapshot(runtime.eventlog) == stored
    assert len(stored) == len(opened) + 2


async def test_read_only_user_gets_a_refusal_and_nothing_changes(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    for i, body in enumerate(["/mergebot merge", "/mergebot cancel", "/mergebot resume"]):
        await comment(runtime, body, f"c-{i}", comment_id=100 + i, login="reader")
    assert await drain(runtime, "w1") == [Outcome.REFUSED] * 3
    assert await snapshot(runtime.eventlog) == opened
    assert [(c[0], c[1], c[2]) for c in forge.comments] == [(REPO, "pr-2", CommentKind.REFUSED)] * 3
    assert "yours is `read`" in forge.comments[0][3]
    assert "@reader" in forge.comments[0][3]


async def test_resume_and_cancel_append_their_events(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await comment(runtime, "/mergebot resume", "c-1", comment_id=1)
    await comment(
        runtime, "/MERGEBOT Cancel", "c-2", comment_id=2, created_at="2019-05-15T16:00:00Z"
    )
    assert await drain(runtime, "w1") == [Outcome.ACTED, Outcome.ACTED]
    added = [e.envelope async for e in runtime.eventlog.replay()][len(opened) :]
    assert [(e.id, e.name, e.payload) for e in added] == [
        (
            "github-comment-1:0",
            "resume_requested",
            {
                "repo": REPO,
                "slug": "pr-2",
                "requested_by": "Codertocat",
                "at": "2019-05-15T15:25:00Z",
                "comment_id": 1,
            },
        ),
        (
            "github-comment-2:0",
            "candidate_withdrawn",
            {
                "repo": REPO,
                "slug": "pr-2",
                "reason": "cancelled",
                "at": "2019-05-15T16:00:00Z",
                "requested_by": "Codertocat",
                "comment_id": 2,
            },
        ),
    ]
    # Nobody approved the pull request's head: the resume says what it waits for.
    [(_, slug, kind, body)] = forge.comments
    assert (slug, kind) == ("pr-2", CommentKind.STATUS)
    assert (
        "I will re-queue `ec26c3e57ca3`, this pull request's newest head, once it is approved"
        in body
    )


async def test_status_replies_with_the_head_and_its_approvals(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await deliver(runtime, "pull_request_review", gh.review("approved"), "rev-1")
    before = await snapshot(runtime.eventlog)
    await comment(runtime, "/mergebot status")
    assert await drain(runtime, "w1") == [Outcome.REPLIED]
    [(repo, slug, kind, body)] = forge.comments
    assert (repo, slug, kind) == (REPO, "pr-2", CommentKind.STATUS)
    assert f"`{HEAD[:12]}` on `changes`" in body
    assert "| approved by | Codertocat |" in body
    assert await snapshot(runtime.eventlog) == before


async def test_status_shows_the_queue_position_of_the_head(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    store = QueueStore(runtime.redis, runtime.keys)
    at = datetime(2019, 5, 15, 15, 30, tzinfo=UTC)
    for slug, sha, minute in [("pr-1", "1" * 40, 29), ("pr-2", HEAD, 30)]:
        ready = at.replace(minute=minute)
        await store.enqueue(
            QueueItem(
                repo=REPO, base=BASE, slug=slug, branch="changes", sha=sha,
                status=Status.QUEUED, ready_at=ready, updated_at=ready,
            )
        )  # fmt: skip
    await comment(runtime, "/mergebot status")
    assert await drain(runtime, "w1") == [Outcome.REPLIED]
    assert f"| queue | queued for `{BASE}`, position 2 |" in forge.comments[0][3]


async def test_unknown_command_gets_the_help_reply(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await comment(runtime, "/mergebot rebase")
    assert await drain(runtime, "w1") == [Outcome.REPLIED]
    [(_, _, kind, body)] = forge.comments
    assert kind is CommentKind.HELP
    assert "I did not understand `/mergebot rebase`" in body
    assert await snapshot(runtime.eventlog) == opened


async def test_merge_without_a_known_head_is_refused(runtime: Runtime, forge: FakeForge) -> None:
    await comment(runtime, "/mergebot merge")
    assert await drain(runtime, "w1") == [Outcome.REFUSED]
    assert "I know of no head of this pull request" in forge.comments[0][3]
    assert await snapshot(runtime.eventlog) == []


async def test_merge_of_a_closed_pull_request_is_refused(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await deliver(runtime, "pull_request", gh.load("pull_request.closed"), "pr-closed")
    before = await snapshot(runtime.eventlog)
    await comment(runtime, "/mergebot merge")
    assert await drain(runtime, "w1") == [Outcome.REFUSED]
    assert "withdrawn from the queue (closed)" in forge.comments[0][3]
    assert await snapshot(runtime.eventlog) == before


async def test_merge_approves_the_head_the_commenter_saw_not_a_later_push(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    later = gh.load("pull_request.synchronize")
    later["pull_request"]["head"]["sha"] = NEWER
    later["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"
    await deliver(runtime, "pull_request", later, "pr-sync")
    await comment(runtime, "/mergebot merge", created_at="2019-05-15T15:25:00Z")
    assert await drain(runtime, "w1") == [Outcome.ACTED]
    approval = [e.envelope async for e in runtime.eventlog.replay()][-2]
    assert approval.name == "review_approved"
    assert approval.payload["sha"] == HEAD


@pytest.mark.parametrize(
    "payload",
    [
        gh.pr_comment("/mergebot merge", action="edited"),
        gh.pr_comment("> /mergebot merge"),
        gh.pr_comment("```\n/mergebot merge\n```"),
        gh.pr_comment("    /mergebot merge"),
    ],
)
async def test_edited_quoted_and_code_commands_do_nothing(
    runtime: Runtime,
    forge: FakeForge,
    opened: list[tuple[str, str]],
    redis: RedisClient,
    keys: Keys,
    payload: dict[str, Any],
) -> None:
    await deliver(runtime, "issue_comment", payload, "c-x")
    assert await CommandInbox(redis, keys).length() == 0
    assert await drain(runtime, "w1") == []
    assert forge.permission_calls == []
    assert forge.comments == []
    assert await snapshot(runtime.eventlog) == opened


async def test_a_forge_failure_is_retried_later_and_then_acts_once(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]], redis: RedisClient
) -> None:
    forge.failures = 1
    await comment(runtime, "/mergebot merge")
    assert await drain(runtime, "w1") == [None]
    assert await snapshot(runtime.eventlog) == opened
    inbox = CommandInbox(redis, runtime.keys)
    assert await inbox.pending_count() == 1
    assert await drain(runtime, "w1", retry_idle_ms=0) == [Outcome.ACTED]
    assert len(await snapshot(runtime.eventlog)) == len(opened) + 2
    assert await inbox.pending_count() == 0


@pytest.mark.allow_error_logs
async def test_a_command_that_keeps_failing_is_abandoned_with_an_error(
    runtime: Runtime,
    forge: FakeForge,
    opened: list[tuple[str, str]],
    redis: RedisClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    forge.failures = 100
    await comment(runtime, "/mergebot merge")
    for _ in range(command_worker.MAX_ATTEMPTS):
        assert await drain(runtime, "w1", retry_idle_ms=0) == [None]
    assert await CommandInbox(redis, runtime.keys).pending_count() == 0
    assert any("command_abandoned" in r.getMessage() for r in caplog.records)
    assert await snapshot(runtime.eventlog) == opened


async def test_commands_of_unmanaged_repos_are_not_acted_on(
    redis: RedisClient, keys: Keys, forge: FakeForge
) -> None:
    runtime = make_runtime(redis, keys, forge, ServerConfig({}, {}))
    await comment(runtime, "/mergebot merge")
    assert await drain(runtime, "w1") == [Outcome.SKIPPED]
    assert forge.permission_calls == []
    assert await snapshot(runtime.eventlog) == []


async def test_without_a_forge_the_command_waits(
    redis: RedisClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = make_runtime(redis, keys, None)
    await comment(runtime, "/mergebot merge")
    assert await drain(runtime, "w1") == [None]
    assert "no forge is configured" in caplog.text
    assert await CommandInbox(redis, keys).pending_count() == 1


async def test_the_worker_service_runs_from_the_background_services(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    assert command_worker.command_service in background_services()
    stop = asyncio.Event()
    task = asyncio.create_task(command_worker.command_service(runtime, stop))
    try:
        await comment(runtime, "/mergebot status")
        await until(lambda: bool(forge.comments), "the status reply")
        assert [c[2] for c in forge.comments] == [CommentKind.STATUS]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_priority_commands_set_the_slugs_priority_and_bad_values_are_refused(
    runtime: Runtime, forge: FakeForge, opened: list[tuple[str, str]]
) -> None:
    await comment(runtime, "/mergebot merge p=7", "c-1", comment_id=1)
    await comment(runtime, "/mergebot priority -3", "c-2", comment_id=2)
    await comment(runtime, "/mergebot priority 5000", "c-3", comment_id=3)
    await comment(runtime, "/mergebot merge p=urgent", "c-4", comment_id=4)
    await comment(runtime, "/mergebot priority 1", "c-5", comment_id=5, login="reader")
    assert await drain(runtime, "w1") == [Outcome.ACTED, Outcome.ACTED] + [Outcome.REFUSED] * 3
    added = [e.envelope async for e in runtime.eventlog.replay()][len(opened) :]
    assert [(e.id, e.name) for e in added] == [
        ("github-comment-1:0", "review_approved"),
        ("github-comment-1:1", "finalize_ready"),
        ("github-comment-1:2", "priority_set"),
        ("github-comment-2:0", "priority_set"),
    ]
    assert [(e.payload["priority"], e.payload["set_by"]) for e in added[2:]] == [
        (7, "Codertocat"),
        (-3, "Codertocat"),
    ]
    refusals = [c[3] for c in forge.comments]
    assert "`5000` is not a priority" in refusals[0]
    assert "`urgent` is not a priority" in refusals[1]
    assert "yours is `read`" in refusals[2]


async def test_freeze_takes_maintain_and_says_why(
    redis: RedisClient, keys: Keys, opened: list[tuple[str, str]]
) -> None:
    forge = FakeForge(permissions={"Codertocat": Permission.WRITE, "lead": Permission.MAINTAIN})
    runtime = make_runtime(redis, keys, forge)
    await comment(runtime, "/mergebot freeze release 2.4", "c-1", comment_id=1)
    await comment(runtime, "/mergebot freeze", "c-2", comment_id=2, login="lead")
    await comment(runtime, "/mergebot FREEZE release 2.4 is cut", "c-3", comment_id=3, login="lead")
    await comment(runtime, "/mergebot unfreeze", "c-4", comment_id=4, login="lead")
    assert await drain(runtime, "w1") == [Outcome.REFUSED] * 2 + [Outcome.ACTED] * 2
    added = [e.envelope async for e in runtime.eventlog.replay()][len(opened) :]
    assert [(e.name, e.payload["by"], e.payload.get("reason")) for e in added] == [
        ("queue_frozen", "lead", "release 2.4 is cut"),
        ("queue_unfrozen", "lead", None),
    ]
    assert added[0].payload["base"] == BASE
    refusals = [c[3] for c in forge.comments]
    assert "takes maintain or admin permission" in refusals[0]
    assert "yours is `write`" in refusals[0]
    assert "a freeze needs a reason" in refusals[1]
