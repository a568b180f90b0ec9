"""Helpers for processor, replay and status tests: a managed runtime, events in, queue out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mergebot.config import ServerConfig
from mergebot.events import envelope_for, parse_event
from mergebot.processor import process_available
from mergebot.queue import QueueItem, Status
from mergebot.rebuild import item_view
from mergebot.runtime import Runtime
from mergebot.store.queue import QueueStore
from tests.factories import REPO
from tests.fakegit import FakeGit


@dataclass
class RecordingHook:
    """The READY hook double: records what the integrator would have been asked to do."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    async def candidate_ready(self, repo: str, base: str) -> None:
        self.calls.append((repo, base))


def manage(runtime: Runtime, *repos: str, **table: Any) -> FakeGit:
    runtime.server_config = ServerConfig({}, {r: dict(table) for r in (repos or (REPO,))})
    git = FakeGit()
    runtime.git_facts = git
    runtime.ready_hook = RecordingHook()
    return git


def hook(runtime: Runtime) -> RecordingHook:
    found = runtime.ready_hook
    assert isinstance(found, RecordingHook)
    return found


async def emit(runtime: Runtime, *raws: dict[str, Any], ids: list[str] | None = None) -> None:
    envs = [
        envelope_for(parse_event(raw).event, source="test", event_id=ids[i] if ids else None)
        for i, raw in enumerate(raws)
    ]
    await runtime.eventlog.append_many(envs)


async def process(runtime: Runtime, consumer: str = "test-consumer") -> int:
    total = 0
    for partition in runtime.keys.all_partitions():
        total += await process_available(runtime, partition, consumer)
    return total


async def queue_items(runtime: Runtime, repo: str = REPO, base: str = "main") -> list[QueueItem]:
    return await QueueStore(runtime.redis, runtime.keys).items(repo, base)


def live(items: list[QueueItem]) -> dict[str, tuple[str, str, str | None]]:
    """Queue content that does not depend on arrival order (see mergebot.plan): the items that
    are not cancelled or superseded, as replay compares them."""
    return {
        i.id: item_view(i) for i in items if i.status not in (Status.CANCELLED, Status.SUPERSEDED)
    }
