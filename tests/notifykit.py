"""Helpers for notification tests: a runtime whose repo has sinks pointing at the stand-in,
the environment holding their secrets, and waiting on a condition with a deadline."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from mergebot.config import ServerConfig
from mergebot.events import envelope_for, parse_event
from mergebot.followups_service import FollowupConsumer
from mergebot.notify.delivery import DeliveryPolicy, Notifier
from mergebot.queue import IntegrationRecord, QueueItem, Status
from mergebot.runtime import Runtime
from mergebot.store.queue import QueueStore
from tests.chatstandin import (
    DISCORD_ID,
    DISCORD_TOKEN,
    SLACK_BOT_TOKEN,
    SLACK_HOOK_PATH,
    TELEGRAM_TOKEN,
    ChatStandIn,
)

REPO = "acme/widgets"
ALL_EVENTS = ["queued", "started", "completed", "blocked", "resumed", "superseded", "cancelled"]
HOOK_SECRET = "webhook-signing-secret-123"
FAST = DeliveryPolicy(
    max_attempts=3, backoff_base=0.02, backoff_max=0.1, timeout=3.0, block_ms=50,
    reclaim_idle_ms=60_000, discover_seconds=0.05,
)  # fmt: skip


def environ(standin: ChatStandIn) -> dict[str, str]:
    return {
        "TG_TOKEN": TELEGRAM_TOKEN,
        "DISCORD_URL": f"{standin.url}/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}",
        "SLACK_URL": f"{standin.url}{SLACK_HOOK_PATH}",
        "SLACK_BOT": SLACK_BOT_TOKEN,
        "HOOK_SECRET": HOOK_SECRET,
    }


def sink(kind: str, standin: ChatStandIn, **extra: Any) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {
        "telegram": {"sink": "telegram", "token_env": "TG_TOKEN", "chat_id": "-1001234567890",
                     "api_url": standin.url},
        "discord": {"sink": "discord", "url_env": "DISCORD_URL"},
        "slack": {"sink": "slack", "url_env": "SLACK_URL"},
        "slack_bot": {"sink": "slack", "bot_token_env": "SLACK_BOT", "channel": "#merges",
                      "api_url": f"{standin.url}/slack/api"},
        "webhook": {"sink": "webhook", "url": f"{standin.url}/hook", "secret_env": "HOOK_SECRET"},
        "log": {"sink": "log"},
    }  # fmt: skip
    return {**tables[kind], "events": ALL_EVENTS, **extra}


def configure(runtime: Runtime, sinks: list[dict[str, Any]], **table: Any) -> None:
    runtime.server_config = ServerConfig(
        {}, {REPO: {"remote": "/nonexistent", "forge": "github", "notify": sinks, **table}}
    )
    runtime.settings = runtime.settings.model_copy(update={"url": "https://mergebot.example.com"})


def notifier(
    runtime: Runtime, standin: ChatStandIn, *, consumer: str = "test-notifier", **policy: Any
) -> Notifier:
    chosen = DeliveryPolicy(**{**FAST.__dict__, **policy})
    return Notifier(runtime, policy=chosen, consumer=consumer, environ=environ(standin))


async def drain(n: Notifier, repo: str = REPO) -> None:
    """Run intake and every outbox once until nothing is left (deterministic, no service),
    follow-ups' consumer included, as a worker runs both."""
    followups = FollowupConsumer(n.runtime, consumer=n.consumer)
    for _ in range(50):
        # Changes first: a drain after a whole integration then sees "started" before the
        # "blocked" event, as the running service does (minutes of checks lie between them).
        moved = await n.intake_changes(repo)
        for partition in n.runtime.keys.all_partitions():
            moved += await followups.intake(partition)
            moved += await n.intake_events(partition)
        for r, key in await n.store.outboxes():
            moved += await n.deliver_pass(r, key)
        if not moved:
            return
    raise AssertionError("notifications kept coming")


class Lifecycle:
    """Drives one candidate the way the processor and the integrator do: queue changes through
    the real QueueStore (which writes the change stream) and outcome events in the event log."""

    def __init__(self, runtime: Runtime, slug: str = "pr-42", branch: str = "feature/x") -> None:
        self.runtime = runtime
        self.queue = QueueStore(runtime.redis, runtime.keys)
        self.slug = slug
        self.branch = branch
        self.sha = ""
        self.item_id = ""
        self.blocks = 0
        self.main = "0" * 40

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def queued(self, sha: str) -> None:
        now = self._now()
        item = QueueItem(
            repo=REPO, base="main", slug=self.slug, branch=self.branch, sha=sha,
            status=Status.QUEUED, ready_at=now, updated_at=now,
        )  # fmt: skip
        assert await self.queue.enqueue(item)
        self.sha, self.item_id = sha, item.id

    async def started(self) -> None:
        await self.queue.transition(REPO, "main", self.item_id, Status.IN_PROGRESS, cause="picked")

    async def blocked(self, reason: str, details: dict[str, Any]) -> str:
        self.blocks += 1
        followup_id = f"{self.slug}-integration-blocked-{self.sha[:7]}"
        now = self._now()
        await self.queue.transition(
            REPO, "main", self.item_id, Status.BLOCKED, cause=reason, at=now,
            followup_id=followup_id, reasons=[reason],
        )  # fmt: skip
        raw = {
            "name": "integration_blocked", "repo": REPO, "slug": self.slug,
            "branch": self.branch, "sha": self.sha, "reason": reason, "details": details,
            "blocked_at": now.isoformat(), "followup_id": followup_id,
        }  # fmt: skip
        await self.runtime.eventlog.append(
            envelope_for(parse_event(raw).event, source="integrator")
        )
        return followup_id

    async def fixed_and_resumed(self, new_sha: str) -> None:
        """A fix pushed, then `resume`: the blocked item is superseded by the new head, which
        is queued again (what a resume at the current head sha does)."""

        await self.queue.transition(
            REPO, "main", self.item_id, Status.SUPERSEDED, cause="new head pushed"
        )
        await self.queued(new_sha)

    async def resumed_same_sha(self) -> None:
        await self.queue.transition(REPO, "main", self.item_id, Status.QUEUED, cause="resume")

    async def completed(self) -> str:
        before, after = self.main, hashlib_sha(self.sha)
        now = self._now()
        await self.queue.transition(
            REPO, "main", self.item_id, Status.INTEGRATED, cause="fast-forwarded", at=now,
            integration=IntegrationRecord(main_after=after),
        )  # fmt: skip
        raw = {
            "name": "integration_completed", "repo": REPO, "slug": self.slug,
            "branch": self.branch, "sha": self.sha, "main_before": before, "main_after": after,
            "integrated_at": now.isoformat(), "checks": [{"name": "tests", "state": "success"}],
        }  # fmt: skip
        await self.runtime.eventlog.append(
            envelope_for(parse_event(raw).event, source="integrator")
        )
        self.main = after
        return after


def hashlib_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()
