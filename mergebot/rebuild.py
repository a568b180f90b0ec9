"""Rebuild projection and queue from the event log alone, and compare with what is stored.

The rebuild runs the processor's own `Projector` and planner; the rebuilt projection and queue
stay in memory (the queue built by the store's own transition functions, `plan.queue_after`),
and are written only to be applied: to scratch keys first (a private key prefix; the per-repo
hash tags are unchanged, so scratch and real keys of a repo share a slot on Cluster), renamed
over the real ones in one transaction. A long log of several repos is shared out to a few
processes (`replay`'s `jobs`), each replaying its repos from the same log. What is compared,
per repo:

- the projection (facts and candidate states), which must be identical: as the text each slug
  is stored as, so only slugs whose text differs are parsed;
- the queue: per item its status, `ready_at` and (when blocked) follow-up id. An item the lease
  holder has `in_progress` rebuilds as `queued` (taking an item is not an event) and is reported
  as in flight, not as a difference. Status histories are not compared: they carry the
  wall-clock times of the moves, which no log records.

`apply` replaces a repo's projection and queue with the rebuilt ones, except while its
integration lease is held (the holder's in-flight item would be lost); those repos are skipped
and reported. The change stream is not rewritten (the notifier already told people).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import logging
import multiprocessing
import os
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from pydantic import BaseModel, TypeAdapter

from mergebot.compaction import load_snapshot
from mergebot.config import RepoConfig, ServerConfig, Settings
from mergebot.git.facts import GitFactsSource, MirrorGitFactsSource
from mergebot.processor import BatchResult, Projector, effective_configs, git_source
from mergebot.queue import QueueItem, Status
from mergebot.readiness import GitFacts
from mergebot.runtime import Runtime, open_runtime
from mergebot.store.eventlog import LogEntry, ParsedEntry
from mergebot.store.keys import Keys
from mergebot.store.lease import info_from_hash
from mergebot.store.packed import HashReader
from mergebot.store.projection import (
    ProjectionState,
    ProjectionStore,
    entry_order,
    joined_json,
    parse_record,
    stored_text_of,
)

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
    # How many processes replayed a share of the repos (1: this one alone).
    processes: int = 1

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


@dataclass(frozen=True)
class ComparedItem:
    status: Status
    view: tuple[str, str, str | None, int]


class _ItemView(BaseModel):
    """The fields of a stored queue item that `compare_queues` looks at; the others (its
    history above all) are skipped unparsed."""

    status: Status
    ready_at: datetime
    followup_id: str | None = None
    priority: int | None = 0


_ITEM_VIEWS: TypeAdapter[dict[str, _ItemView]] = TypeAdapter(dict[str, _ItemView])


def compared_items(raw: dict[str, str]) -> dict[str, ComparedItem]:
    """Item id -> what `compare_queues` looks at (`item_view` of the item), read from the
    stored JSON of all of them in one parse: full validation of each item and its history was
    the most expensive step of a large replay."""
    found: dict[str, ComparedItem] = {}
    for key, item in (_ITEM_VIEWS.validate_json(joined_json(raw)) if raw else {}).items():
        followup = item.followup_id if item.status == Status.BLOCKED else None
        view = (item.status.value, item.ready_at.isoformat(), followup, item.priority or 0)
        found[key] = ComparedItem(item.status, view)
    return found


def compare_queues(
    mine: dict[str, ComparedItem], theirs: dict[str, ComparedItem], report: RepoReport
) -> None:
    """Live items must match one for one. Absent, cancelled and superseded all mean "not in the
    queue": whether a candidate that the log made obsolete was ever queued (and so which of the
    three it ended as) depends on how events were batched when they arrived, not on the log."""
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
        elif old.view != new.view:
            report.differences.append(f"item {key}: stored {old.view}, rebuilt {new.view}")


def compare_projections(
    stored: ProjectionState, rebuilt: ProjectionState, report: RepoReport
) -> None:
    # Compared as values (dicts compare regardless of key order; fact lists are kept sorted),
    # not as canonical JSON: dumping tens of thousands of candidates twice costs seconds.
    if (stored.facts.slugs, stored.facts.pushes) != (rebuilt.facts.slugs, rebuilt.facts.pushes):
        report.differences.append("projection facts differ from the log")
    if stored.candidates == rebuilt.candidates:
        return
    for key in sorted(stored.candidates.keys() | rebuilt.candidates.keys()):
        old, new = stored.candidates.get(key), rebuilt.candidates.get(key)
        if old != new:
            was = old.status if old else "absent"
            now = new.status if new else "absent"
            report.differences.append(f"candidate {key}: stored {was}, rebuilt {now}")


async def _drop_scratch(runtime: Runtime, scratch: Keys) -> None:
    async for key in runtime.redis.scan_iter(match=f"{scratch.prefix}:*", count=500):
        await runtime.redis.delete(key)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the duration. A replay allocates several models per
    event, all kept until it returns, and the collector's passes over that growing heap were a
    sixth or more of a long replay's time, for no garbage: what replay drops is freed by
    reference counting. The collector is back on (if it was on) when replay returns, so
    whatever cycles were left are collected then."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class _FetchedAhead:
    """Git for a replay: each repo's snapshot (a fetch of every branch) is started before the
    log is read, so the fetches run while the log is read and folded instead of one after the
    other at the end. Any other question goes to `source` as it comes."""

    def __init__(self, source: GitFactsSource, configs: Mapping[str, RepoConfig]) -> None:
        self.source = source
        self.ahead = {
            name: asyncio.ensure_future(source.snapshot(name, config))
            for name, config in configs.items()
        }

    async def snapshot(
        self, repo: str, config: RepoConfig, claims: Mapping[str, str] | None = None
    ) -> GitFacts:
        task = self.ahead.pop(repo, None)
        if task is None or claims is not None:
            return await self.source.snapshot(repo, config, claims)
        return await task

    async def close(self) -> None:
        """Wait for the snapshots nobody asked for (a repo without entries, a failed replay)."""
        for task in self.ahead.values():
            task.cancel()
        await asyncio.gather(*self.ahead.values(), return_exceptions=True)
        self.ahead.clear()


# Repos settled and compared side by side: what one waits for from Redis (git's answers, the
# stored projection and queue read), the other uses the CPU for.
_REPOS_AT_ONCE = 2

# Below this many entries per process, sharing a replay out costs more than it saves: a process
# of its own spends about a second importing mergebot before it reads the log.
ENTRIES_PER_PROCESS = 20_000


def default_jobs() -> int:
    """One process per CPU this process may run on, up to 4: Redis serves every one of them,
    and past a few the log's reads, not the folds, are what they wait for."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def share_out(weights: Mapping[str, int], jobs: int) -> list[list[str]]:
    """Repos in `jobs` groups of about equal weight (each repo's slug count: what its fold and
    settle cost grows with), heaviest first onto the lightest group; each group sorted."""
    groups: list[tuple[int, int, list[str]]] = [(0, n, []) for n in range(max(1, jobs))]
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        weight, n, group = heapq.heappop(groups)
        group.append(name)
        heapq.heappush(groups, (weight + max(1, weights[name]), n, group))
    return [sorted(group) for _, _, group in sorted(groups, key=lambda g: g[1]) if group]


async def replay(
    runtime: Runtime, *, repo: str | None = None, apply: bool = False, jobs: int | None = None
) -> ReplayReport:
    """Rebuild and compare every repo (or `repo`). A long log of several repos is shared out to
    `jobs` processes (`default_jobs()` when None), each replaying its own repos from the same
    log: the folds are independent per repo, and one process folds on one CPU."""
    known = cast(set[str], await runtime.redis.smembers(runtime.keys.repos()))
    names = sorted(known if repo is None else {repo} & known)
    groups = await _groups(runtime, names, default_jobs() if jobs is None else jobs)
    with _collector_paused():
        if len(groups) < 2:
            return await _replay(runtime, names, only=repo is not None, apply=apply)
        return await _replay_shared(runtime, groups, apply=apply)


async def _groups(runtime: Runtime, names: list[str], jobs: int) -> list[list[str]]:
    """How to share the repos out: one group (this process) unless the log is long enough for
    `jobs` processes and this runtime can be opened again elsewhere (its Redis URL is known and
    git is asked through mirrors, not a test's stand-in)."""
    source = runtime.git_facts
    reopenable = runtime.redis_url is not None and (
        source is None or isinstance(source, MirrorGitFactsSource)
    )
    if jobs < 2 or len(names) < 2 or not reopenable:
        return [names]
    partitions = sorted({runtime.keys.partition_of(name) for name in names})
    lengths = [await runtime.redis.xlen(runtime.keys.events(p)) for p in partitions]
    jobs = min(jobs, len(names), sum(lengths) // ENTRIES_PER_PROCESS)
    if jobs < 2:
        return [names]
    weights = {name: int(await runtime.redis.hlen(runtime.keys.projection_slugs(name)))
               for name in names}  # fmt: skip
    return share_out(weights, jobs)


@dataclass(frozen=True)
class _Share:
    """What a process replaying a share of the repos needs to open the store as this one has
    it (everything picklable: it is sent to a new interpreter)."""

    settings: Settings
    server_config: ServerConfig
    redis_url: str
    keys: Keys
    repos: list[str]
    apply: bool


def _replay_share(share: _Share) -> ReplayReport:
    """The entry point of a process replaying one share (a new interpreter, its own loop)."""

    async def job() -> ReplayReport:
        settings = share.settings.model_copy(update={"redis_url": share.redis_url})
        async with open_runtime(
            settings, server_config=share.server_config, keys=share.keys
        ) as runtime:
            with _collector_paused():
                return await _replay(runtime, share.repos, only=True, apply=share.apply)

    return asyncio.run(job())


async def _replay_shared(runtime: Runtime, groups: list[list[str]], *, apply: bool) -> ReplayReport:
    """The first group here, every other in a process of its own (spawned, not forked: a fork
    of a process with a running event loop and open connections inherits both)."""
    assert runtime.redis_url is not None
    loop = asyncio.get_running_loop()
    shares = [
        _Share(runtime.settings, runtime.server_config, runtime.redis_url, runtime.keys, group,
               apply)
        for group in groups[1:]
    ]  # fmt: skip
    pool = ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("spawn"))
    try:
        others = [loop.run_in_executor(pool, _replay_share, share) for share in shares]
        try:
            mine = await _replay(runtime, groups[0], only=True, apply=apply)
        finally:
            parts = await asyncio.gather(*others, return_exceptions=True)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    report = ReplayReport(processes=len(groups))
    repos = list(mine.repos)
    for part in parts:
        if isinstance(part, BrokenProcessPool):
            raise ChildProcessError(f"a replay process ended before it reported: {part}")
        if isinstance(part, BaseException):
            raise part
        repos += part.repos
    report.repos = sorted(repos, key=lambda r: r.repo)
    return report


async def _replay(runtime: Runtime, names: list[str], *, only: bool, apply: bool) -> ReplayReport:
    """Replay `names` (and, unless `only`, any other repo the log holds entries of)."""
    scratch = Keys(
        prefix=f"{runtime.keys.prefix}:replay-{secrets.token_hex(4)}",
        partitions=runtime.keys.partitions,
    )
    server = runtime.server_config
    git = _FetchedAhead(
        git_source(runtime), {name: server.repo(name) for name in names if server.managed(name)}
    )
    projector = Projector(runtime.redis, scratch, server, git, configs=effective_configs(runtime))
    report = ReplayReport()
    try:
        # One pass over the log, a page at a time: each page's entries are folded into their
        # repo's facts (the entries are not kept); git and the queue are asked once per slug
        # afterwards.
        folded: dict[str, tuple[ProjectionState, BatchResult]] = {}
        # A compacted repo starts from its snapshot, and folds only the entries from its point.
        points: dict[str, tuple[int, int]] = {}
        for name in names:
            snapshot = await load_snapshot(runtime, runtime.keys, name)
            if snapshot is not None:
                snapshot.facts.mark_all_changed()
                folded[name] = (ProjectionState(repo=name, facts=snapshot.facts), BatchResult(name))
                points[name] = entry_order(snapshot.point)
        async for page in runtime.eventlog.replay_pages(repos=names if only else None):
            by_repo: dict[str, list[LogEntry | ParsedEntry]] = {}
            for entry in page:
                name = entry.repo
                if name in points and entry_order(entry.entry_id) < points[name]:
                    continue  # already in the snapshot (not trimmed yet: another reader needs it)
                by_repo.setdefault(name, []).append(entry)
            for name, entries in by_repo.items():
                if name not in folded:
                    folded[name] = (ProjectionState.empty(name), BatchResult(name))
                state, result = folded[name]
                projector.fold_in(state, entries, result)
        names = sorted(folded)
        reports = {name: RepoReport(name, runtime.server_config.repo(name).base_branch)
                   for name in names}  # fmt: skip
        free = asyncio.Semaphore(_REPOS_AT_ONCE)

        async def finish(name: str) -> None:
            async with free:
                state, result = folded.pop(name)
                repo_report = reports[name]
                repo_report.entries = result.applied
                queue = await projector.settle(state, result)
                await _compare(runtime, state, queue, repo_report)
                if apply and repo_report.differences:
                    await projector.store(state, result)
                    await _apply(runtime, scratch, repo_report)

        async with asyncio.TaskGroup() as group:
            for name in names:
                group.create_task(finish(name))
        report.repos += [reports[name] for name in names]
    finally:
        await git.close()
        if apply:  # nothing is written under the scratch prefix otherwise
            await _drop_scratch(runtime, scratch)
    return report


async def _compare(
    runtime: Runtime,
    new_projection: ProjectionState,
    new_queue: Mapping[str, QueueItem],
    report: RepoReport,
) -> None:
    """The rebuilt projection and queue are compared as they are in memory (the projection as
    the text it would be stored as) with the stored ones."""
    managed = runtime.server_config.managed(report.repo)
    stored = await ProjectionStore(runtime.redis, runtime.keys).stored_text(report.repo)
    if stored is None:  # the older layout: compare parsed projections
        real_projection = await ProjectionStore(runtime.redis, runtime.keys).load(report.repo)
        if managed:
            compare_projections(real_projection, new_projection, report)
        elif real_projection.facts.canonical() != new_projection.facts.canonical():
            report.differences.append("projection facts differ from the log")
    else:
        compare_stored(stored, stored_text_of(new_projection), report, candidates=managed)
    [stored_items] = await HashReader(runtime.redis).read(
        [runtime.keys.items(report.repo, report.base)]
    )
    rebuilt = {key: ComparedItem(item.status, item_view(item)) for key, item in new_queue.items()}
    compare_queues(compared_items(stored_items), rebuilt, report)


def compare_stored(
    stored: tuple[dict[str, str], dict[str, str]],
    rebuilt: tuple[dict[str, str], dict[str, str]],
    report: RepoReport,
    *,
    candidates: bool,
) -> None:
    """Compare two projections by their stored text: equal projections store equal text (facts
    sorted, candidates in key order), so only the slugs whose text differs are parsed."""
    (slugs, pushes), (new_slugs, new_pushes) = stored, rebuilt
    differing = sorted(
        k for k in slugs.keys() | new_slugs.keys() if slugs.get(k) != new_slugs.get(k)
    )
    old_records = {k: parse_record(slugs[k]) for k in differing if k in slugs}
    new_records = {k: parse_record(new_slugs[k]) for k in differing if k in new_slugs}
    facts_differ = pushes != new_pushes or any(
        (k in old_records) != (k in new_records) or old_records[k].facts != new_records[k].facts
        for k in differing
    )
    if facts_differ:
        report.differences.append("projection facts differ from the log")
    if not candidates:
        return
    for slug in differing:
        old = {c.key: c for c in (old_records[slug].candidates if slug in old_records else [])}
        new = {c.key: c for c in (new_records[slug].candidates if slug in new_records else [])}
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                was = old[key].status if key in old else "absent"
                now = new[key].status if key in new else "absent"
                report.differences.append(f"candidate {key}: stored {was}, rebuilt {now}")


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
                # As a raw command: redis-py's cluster pipeline refuses `rename()` by name, but
                # scratch and live keys share the repo's hash tag, so MULTI runs on one node.
                pipe.execute_command("RENAME", src, dst)
            else:
                pipe.delete(dst)
        pipe.incr(runtime.keys.queue_version(repo, base))  # readers' views of the queue are stale
        await pipe.execute()
    report.applied = True
    log.warning("replay_applied repo=%s differences=%d", repo, len(report.differences))
