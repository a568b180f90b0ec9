"""The whole path of a blocked candidate, with the real processor, integrator and git: blocked by
a failing check → fix pushed → resume → integrated. The follow-up is opened and then resolved, and
the candidate's one Telegram message and one Discord message are edited through every state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mergebot.config import parse_server_config
from mergebot.events import envelope_for, parse_event
from mergebot.followups import FollowupStatus
from mergebot.integrator import IntegratorHook
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.store.followups import FollowupStore
from tests.chatstandin import ChatStandIn, markdown_v2_problem
from tests.gitutil import GitRemote, git
from tests.integrationkit import REPO, items, process, server_toml
from tests.notifykit import drain, notifier

CHECK = "if [ -f broken.txt ]; then echo 'FAIL: broken.txt is not allowed' >&2; exit 1; fi"


@pytest.fixture
async def standin() -> AsyncIterator[ChatStandIn]:
    server = await ChatStandIn().start()
    try:
        yield server
    finally:
        await server.stop()


def configure(
    runtime: Runtime, remote: GitRemote, standin: ChatStandIn, mode: str = "live"
) -> None:
    text = server_toml(remote, approvals_bind_to_sha=False, checks={"commands": [CHECK]}, mode=mode)
    text += f"""
[[repos."{REPO}".notify]]
sink = "telegram"
token_env = "TG_TOKEN"
chat_id = "-1001234567890"
api_url = "{standin.url}"
events = ["queued", "started", "completed", "blocked", "resumed", "superseded", "cancelled"]

[[repos."{REPO}".notify]]
sink = "discord"
url_env = "DISCORD_URL"
events = ["queued", "started", "completed", "blocked", "resumed", "superseded", "cancelled"]
"""
    runtime.server_config = parse_server_config(text, "mergebot.toml")


async def post(runtime: Runtime, *raws: dict[str, Any]) -> None:
    await runtime.eventlog.append_many(
        [envelope_for(parse_event(raw).event, source="test") for raw in raws]
    )


def now() -> str:
    return datetime.now(UTC).isoformat()


def ready(branch: str, sha: str) -> list[dict[str, Any]]:
    at = now()
    return [
        {"name": "branch_pushed", "repo": REPO, "branch": branch, "sha": sha,
         "remote": "origin", "pushed_at": at, "pusher": "bob"},
        {"name": "finalize_ready", "repo": REPO, "slug": "pr-7", "branch": branch, "sha": sha,
         "worker_session_id": "w-1", "orchestrator_session_id": "o-1", "ready_at": at},
    ]  # fmt: skip


def shown(standin: ChatStandIn) -> list[str]:
    """The first line of every text the Telegram message showed, in order."""
    return [r.json["text"].splitlines()[0] for r in standin.to("telegram")]


async def test_blocked_fix_pushed_resume_integrated(
    runtime: Runtime, remote: GitRemote, standin: ChatStandIn
) -> None:
    configure(runtime, remote, standin)
    n = notifier(runtime, standin)
    hook = IntegratorHook(runtime)
    try:
        # A candidate whose checks fail: approved (for the slug as a whole) and finalized.
        branch = "feature/pr-7"
        bad = remote.branch_with(branch, "broken.txt", "oops\n")
        approval = {
            "name": "review_approved", "repo": REPO, "slug": "pr-7", "approved_at": now(),
            "review_round": 1, "reviewer_session_id": "alice",
        }  # fmt: skip
        await post(runtime, approval, *ready(branch, bad))
        await process(runtime)  # no READY hook yet: it only enters the queue
        await drain(n)
        runtime.ready_hook = hook
        await hook.candidate_ready(REPO, "main")
        await asyncio.wait_for(hook.idle(), timeout=60)
        assert (await items(runtime))["pr-7"].status is Status.BLOCKED
        await drain(n)

        store = FollowupStore(runtime.redis, runtime.keys)
        [followup] = await store.query(REPO)
        assert followup.status is FollowupStatus.OPEN
        assert followup.reason == "checks_failed"
        assert followup.info().checks[0].output == "FAIL: broken.txt is not allowed"
        blocked_text = standin.to("telegram")[-1].json["text"]
        assert "```\nFAIL: broken.txt is not allowed\n```" in blocked_text  # a pre block
        assert followup.id.replace("-", "\\-") in blocked_text

        # The fix is pushed, finalized, and the author resumes.
        git(remote.work, "checkout", "-q", branch)
        git(remote.work, "rm", "-q", "broken.txt")
        git(remote.work, "commit", "-q", "-m", "remove broken.txt")
        fixed = remote.push(branch)
        resume = {"name": "resume_requested", "repo": REPO, "slug": "pr-7",
                  "requested_by": "bob", "at": now()}  # fmt: skip
        await post(runtime, *ready(branch, fixed), resume)
        await process(runtime)
        await asyncio.wait_for(hook.idle(), timeout=60)
        assert (await items(runtime))["pr-7"].sha == fixed
        assert (await items(runtime))["pr-7"].status is Status.INTEGRATED
        await drain(n)
    finally:
        await hook.close()
        await n.close()
        runtime.close_mirrors()

    main_after = remote.rev("main")
    assert remote.parents(main_after)[1] == fixed
    [resolved] = await store.query(REPO)
    assert resolved.status is FollowupStatus.RESOLVED
    assert resolved.resolution == f"integrated as {main_after[:7]}"

    # Telegram: one message, sent once and edited through every state. The processor retires
    # the blocked commit (superseded) before it queues the fixed one, so the chat tells it so.
    requests = standin.to("telegram")
    assert shown(standin) == [
        "⏳ *acme/widgets pr\\-7*: queued for main",
        "🔄 *acme/widgets pr\\-7*: integrating into main",
        "⛔ *acme/widgets pr\\-7*: *blocked*: checks failed",
        "⏭️ *acme/widgets pr\\-7*: superseded by a newer commit",
        "⏳ *acme/widgets pr\\-7*: queued for main",
        "🔄 *acme/widgets pr\\-7*: integrating into main",
        f"✅ *acme/widgets pr\\-7*: integrated into main as `{main_after[:7]}`",
    ]
    assert [r.path.rsplit("/", 1)[1] for r in requests] == ["sendMessage"] + ["editMessageText"] * 6
    [first_id] = [int(k.split(":")[1]) for k in standin.messages if k.startswith("telegram:")]
    assert {r.json["message_id"] for r in requests[1:]} == {first_id}
    assert all(markdown_v2_problem(r.json["text"]) is None for r in requests)
    # Discord: the same, one webhook message edited six times.
    discord = standin.to("discord")
    assert [r.method for r in discord] == ["POST"] + ["PATCH"] * 6
    assert len({r.path for r in discord[1:]}) == 1
    [message] = [m for k, m in standin.messages.items() if k.startswith("discord:")]
    assert message["embeds"][0]["title"] == "✅ acme/widgets pr-7"


async def test_a_shadow_decision_is_told_as_would_integrate(
    runtime: Runtime, remote: GitRemote, standin: ChatStandIn
) -> None:
    configure(runtime, remote, standin, mode="shadow")
    n = notifier(runtime, standin)
    hook = IntegratorHook(runtime)
    main_before = remote.rev("main")
    try:
        branch = "feature/pr-7"
        sha = remote.branch_with(branch, "ok.txt", "fine\n")
        approval = {
            "name": "review_approved", "repo": REPO, "slug": "pr-7", "approved_at": now(),
            "review_round": 1, "reviewer_session_id": "alice",
        }  # fmt: skip
        await post(runtime, approval, *ready(branch, sha))
        runtime.ready_hook = hook
        await process(runtime)
        await asyncio.wait_for(hook.idle(), timeout=60)
        item = (await items(runtime))["pr-7"]
        assert item.status is Status.INTEGRATED
        assert item.integration.mode == "shadow"
        await drain(n)
    finally:
        await hook.close()
        await n.close()
        runtime.close_mirrors()

    assert remote.rev("main") == main_before  # nothing was pushed
    would = item.integration.would_integrate
    assert shown(standin)[-1] == (
        f"✅ *acme/widgets pr\\-7*: would integrate into main as `{would[:7]}` — shadow mode, "
        "nothing was pushed"
    )
    assert "integrated into" not in standin.to("telegram")[-1].json["text"]
    [message] = [m for k, m in standin.messages.items() if k.startswith("discord:")]
    assert message["embeds"][0]["description"].startswith("**Would integrate** into main")
