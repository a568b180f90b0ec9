"""`mergebot resume` / `cancel`: an operator event in the log, acted on by the processor."""

from __future__ import annotations

import asyncio

import pytest

from mergebot.main import main
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.store.queue import QueueStore
from tests.brainkit import emit, manage, process, queue_items
from tests.conftest import free_port
from tests.factories import REPO
from tests.unit.test_readiness import READY_SET, at, raw_event


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def blocked_candidate(runtime: Runtime) -> None:
    """pr-1 queued by the processor, then blocked as the integrator does it under its lease."""
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    [item] = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", item.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", item.id, Status.BLOCKED, cause="merge conflict",
        followup_id="pr-1-integration-blocked-aaaaaaa",
    )  # fmt: skip
    await emit(runtime, raw_event("integration_blocked", blocked_at=at(10)))
    await process(runtime)


async def test_resume_requeues_a_blocked_candidate_through_the_processor(
    cli_env: dict[str, str], runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    await blocked_candidate(runtime)
    assert await cli("resume", REPO, "pr-1", "--by", "alice") == 0
    out = capsys.readouterr().out
    assert "resume_requested for acme/widgets pr-1 by alice: stored" in out
    assert "pr-1 is blocked: feature/one at aaaaaaa" in out
    assert "follow-up pr-1-integration-blocked-aaaaaaa" in out
    [entry] = await runtime.eventlog.tail(limit=1)
    assert entry.envelope.name == "resume_requested"
    assert entry.envelope.source == "cli"
    assert entry.envelope.payload["requested_by"] == "alice"
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.QUEUED
    assert item.history[-1].cause == "resume requested"


async def test_resume_defaults_to_the_os_user_and_says_when_nothing_is_blocked(
    cli_env: dict[str, str],
    runtime: Runtime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "operator-jo")
    monkeypatch.setenv("LOGNAME", "operator-jo")
    assert await cli("resume", REPO, "pr-9") == 0
    out = capsys.readouterr().out
    assert "by operator-jo: stored" in out
    assert "pr-9 has no candidate in the queue of main" in out
    assert "changes nothing" in out


async def test_cancel_withdraws_a_queued_candidate(
    cli_env: dict[str, str], runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    assert await cli("cancel", REPO, "pr-1", "--by", "bob") == 0
    out = capsys.readouterr().out
    assert "candidate_withdrawn (cancelled) for acme/widgets pr-1 by bob: stored" in out
    assert "pr-1 is queued #1: feature/one at aaaaaaa" in out
    [entry] = await runtime.eventlog.tail(limit=1)
    assert entry.envelope.payload["reason"] == "cancelled"
    assert entry.envelope.source == "cli"
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.CANCELLED
    assert item.reasons == ["withdrawn (cancelled)"]


@pytest.mark.parametrize("command", ["resume", "cancel"])
@pytest.mark.parametrize(
    ("repo", "slug", "problem"),
    [
        ("not-a-repo", "pr-1", "repo"),
        (REPO, "PR 1!", "slug"),
        (REPO, " ", "slug"),
    ],
)
async def test_bad_input_exits_2_and_stores_nothing(
    cli_env: dict[str, str],
    runtime: Runtime,
    capsys: pytest.CaptureFixture[str],
    command: str,
    repo: str,
    slug: str,
    problem: str,
) -> None:
    assert await cli(command, repo, slug, "--by", "alice") == 2
    err = capsys.readouterr().err
    assert err.startswith("mergebot: invalid event:")
    assert f"{problem}:" in err
    assert await runtime.eventlog.tail(limit=5) == []


async def test_blank_requester_is_refused(
    cli_env: dict[str, str], runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("resume", REPO, "pr-1", "--by", "  ") == 2
    assert "requested_by" in capsys.readouterr().err
    assert await runtime.eventlog.tail(limit=5) == []


def test_unreachable_redis_exits_1_without_the_password(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MERGEBOT_REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert main(["cancel", REPO, "pr-1"]) == 1
    err = capsys.readouterr().err
    assert "cannot write the event log" in err
    assert "hunter2" not in err
