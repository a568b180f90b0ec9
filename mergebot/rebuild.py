"""Rebuild projection and queue from the event log alone, and compare with what is stored.

The rebuild runs the processor's own `Projector` over scratch keys (a private key prefix; the
per-repo hash tags are unchanged, so scratch and real keys of a repo share a slot on Cluster), so
nothing real is touched unless `apply` is asked for. What is compared, per repo:

- the projection (facts and candidate states), which must be identical;
- the queue: per item its status, `ready_at` and (when blocked) follow-up id. An item the lease
  holder has `in_progress` rebuilds as `queued` (taking an item is not an event) and is reported
  as in flight, not as a difference. Status histories are not compared: they carry the
  wall-clock times of the moves, which no log records.

`apply` replaces a repo's projection and queue with the rebuilt ones, except while its
integration lease is held (the holder's in-flight item would be lost); those repos are skipped
and reported. The change stream is not rewritten (the notifier already told people).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import cast

from mergebot.processor import BATCH, Projector, effective_configs, git_source
from mergebot.queue import QueueItem, Status
from mergebot.runtime import Runtime
from mergebot.store.eventlog import LogEntry
from mergebot.store.keys import Keys
from mergebot.store.lease import info_from_hash
from mergebot.store.projection import ProjectionState, ProjectionStore
from mergebot.store.queue import QueueStore

log = logging.getLogger("mergebot.replay")


@dataclass
class RepoReport:
    repo: str
    base: str
    entries: int = 0
    differences: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    applied: bool = False
    skipped: str | None = None


@dataclass
class ReplayReport:
    repos: list[RepoReport] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return sum(r.entries for r in self.repos)

    @property
    def differences(self) -> int:
        return sum(len(r.differences) for r in self.repos)


def item_view(item: QueueItem) -> tuple[str, str, str | None, int]:
    """What must match between stored and rebuilt items.

    `ready_at` and `priority` always count: they are the candidate's newest `finalize_ready` and
    its slug's newest `priority_set`, corrected on every item that is not gone, so they follow
    from the log whatever order events arrived in. The
    follow-up id counts only while blocked: a resumed item keeps the id of its last block, and
    whether it was ever blocked depends on how events were batched, not on what they say.
    """
    followup = item.followup_id if item.status == Status.BLOCKED else None
    return (item.status.value, item.ready_at.isoformat(), followup, item.priority)


_GONE = frozenset({Status.CANCELLED, Status.SUPERSEDED})


def compare_queues(stored: list[QueueItem], rebuilt: list[QueueItem], report: RepoReport) -> None:
    """Live items must match one for one. Absent, cancelled and superseded all mean "not in the
    queue": whether a candidate that the log made obsolete was ever queued (and so which of the
    three it ended as) depends on how events were batched when they arrived, not on the log."""
    mine = {i.id: i for i in stored}
    theirs = {i.id: i for i in rebuilt}
    for key in sorted(mine.keys() | theirs.keys()):
        old, new = mine.get(key), theirs.get(key)
        old_gone = old is None or old.status in _GONE
        new_gone = new is None or new.status in _GONE
        if old_gone and new_gone:
            continue
        if old is None or old_gone:
            assert new is not None
            was = old.status.value if old else "absent"
            report.differences.append(f"item {key}: stored {was}, rebuilt {new.status}")
        elif new is None or new_gone:
            now = new.status.value if new else "absent"
            report.differences.append(f"item {key}: stored {old.status}, rebuilt {now}")
        elif old.status == Status.IN_PROGRESS and new.status == Status.QUEUED:
            report.in_flight.append(key)
        elif item_view(old) != item_view(new):
            report.differences.append(
                f"item {key}: stored {item_view(old)}, rebuilt {item_view(new)}"
            )


def compare_projections(
    stored: ProjectionState, rebuilt: ProjectionState, report: RepoReport
) -> None:
    if stored.canonical_json() == rebuilt.canonical_json():
        return
    if stored.facts.canonical() != rebuilt.facts.canonical():
        report.differences.append("projection facts differ from the log")
    for key in sorted(stored.candidates.keys() | rebuilt.candidates.keys()):
        old, new = stored.candidates.get(key), rebuilt.candidates.get(key)
        if old != new:
            was = old.status if old else "absent"
            now = new.status if new else "absent"
            report.differences.append(f"candidate {key}: stored {was}, rebuilt {now}")


async def _entries_by_repo(runtime: Runtime, repo: str | None) -> dict[str, list[LogEntry]]:
    grouped: dict[str, list[LogEntry]] = {}
    async for entry in runtime.eventlog.replay(repo=repo):
        grouped.setdefault(entry.envelope.repo, []).append(entry)
    return grouped


async def _drop_scratch(runtime: Runtime, scratch: Keys) -> None:
    async for key in runtime.redis.scan_iter(match=f"{scratch.prefix}:*", count=500):
        await runtime.redis.delete(key)


async def replay(runtime: Runtime, *, repo: str | None = None, apply: bool = False) -> ReplayReport:
    scratch = Keys(
        prefix=f"{runtime.keys.prefix}:replay-{secrets.token_hex(4)}",
        partitions=runtime.keys.partitions,
    )
    projector = Projector(
        runtime.redis, scratch, runtime.server_config, git_source(runtime),
        configs=effective_configs(runtime),
    )  # fmt: skip
    report = ReplayReport()
    try:
        grouped = await _entries_by_repo(runtime, repo)
        for name in sorted(grouped):
            entries = grouped[name]
            base = runtime.server_config.repo(name).base_branch
            repo_report = RepoReport(name, base, entries=len(entries))
            for start in range(0, len(entries), BATCH):
                await projector.apply(name, entries[start : start + BATCH])
            await _compare(runtime, scratch, repo_report)
            if apply and repo_report.differences:
                await _apply(runtime, scratch, repo_report)
            report.repos.append(repo_report)
    finally:
        await _drop_scratch(runtime, scratch)
    return report


async def _compare(runtime: Runtime, scratch: Keys, report: RepoReport) -> None:
    real_projection = await ProjectionStore(runtime.redis, runtime.keys).load(report.repo)
    new_projection = await ProjectionStore(runtime.redis, scratch).load(report.repo)
    if runtime.server_config.managed(report.repo):
        compare_projections(real_projection, new_projection, report)
    elif real_projection.facts.canonical() != new_projection.facts.canonical():
        report.differences.append("projection facts differ from the log")
    stored = await QueueStore(runtime.redis, runtime.keys).items(report.repo, report.base)
    rebuilt = await QueueStore(runtime.redis, scratch).items(report.repo, report.base)
    compare_queues(stored, rebuilt, report)


async def _apply(runtime: Runtime, scratch: Keys, report: RepoReport) -> None:
    repo, base = report.repo, report.base
    raw = cast(dict[str, str], await runtime.redis.hgetall(runtime.keys.lease(repo, base)))
    holder = info_from_hash(raw)
    if holder is not None:
        report.skipped = f"the integration lease is held by {holder.owner}; retry when it is free"
        return
    pairs = [
        (scratch.projection(repo), runtime.keys.projection(repo)),
        (scratch.projection_slugs(repo), runtime.keys.projection_slugs(repo)),
        (scratch.projection_pushes(repo), runtime.keys.projection_pushes(repo)),
        (scratch.projection_notes(repo), runtime.keys.projection_notes(repo)),
        (scratch.items(repo, base), runtime.keys.items(repo, base)),
        (scratch.queue(repo, base), runtime.keys.queue(repo, base)),
    ]
    exists = [bool(await runtime.redis.exists(src)) for src, _ in pairs]
    async with runtime.redis.pipeline(transaction=True) as pipe:
        for (src, dst), present in zip(pairs, exists, strict=True):
            if present:
                pipe.rename(src, dst)
            else:
                pipe.delete(dst)
        await pipe.execute()
    report.applied = True
    log.warning("replay_applied repo=%s differences=%d", repo, len(report.differences))
