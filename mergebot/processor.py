"""The processor: event log -> readiness projection -> queue -> READY hook (SPEC §3-§5).

It reads every event-log partition through the consumer group "processor". One processor at a
time folds a partition (a partition lease, same Lua as the integration lease), so the checkpoint
stored with each repo's projection (the id of the last applied entry) is exact: an entry that was
applied and stored but not acknowledged before a crash is skipped when it comes back. Replicas
share the work by partitions; a replica that dies leaves its lease to expire and its pending
entries to be reclaimed (XAUTOCLAIM) by the next holder.

Per batch and repo: fold the entries into the facts, fetch git once, evaluate the touched slugs,
let `mergebot.plan` decide the queue actions, perform them, store the projection, acknowledge,
and then tell the READY hook (the integrator) that a candidate is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from redis.exceptions import RedisError

from mergebot.compaction import compact_partition, compaction_due
from mergebot.config import REMOTE_NAME, RepoConfig, ServerConfig
from mergebot.events import (
    BranchPushed,
    CanonicalEvent,
    EventName,
    FinalizeReady,
    IntegrationCompleted,
)
from mergebot.forge.repo_config import EffectiveConfigs
from mergebot.git.facts import GitFactsSource, MirrorGitFactsSource
from mergebot.plan import Action, Enqueue, Interrupt, Move, Reschedule, plan, queue_after
from mergebot.queue import InvalidTransitionError, QueueItem, Status
from mergebot.readiness import (
    CandidateState,
    CandidateStatus,
    GitFacts,
    GitFactsError,
    Note,
    NoteCode,
    Rules,
    evaluate,
    fold,
)
from mergebot.runtime import Runtime
from mergebot.store.connection import RedisClient
from mergebot.store.eventlog import LogEntry, ParsedEntry
from mergebot.store.keys import Keys
from mergebot.store.lease import Lease, LeaseBusyError, LeaseLostError
from mergebot.store.projection import ProjectionState, ProjectionStore, entry_order
from mergebot.store.queue import ItemNotFoundError, QueueStore

log = logging.getLogger("mergebot.processor")

GROUP = "processor"
# Entries folded per batch, at most. A batch costs a few round trips per repo it touches whatever
# it holds (load check, queue reads, one store, git's tips): with a hundred repos interleaved in a
# backlog, 3,000 entries give each repo tens of events to share them instead of a handful. They
# are read `READ_COUNT` at a time, so parsing a reply holds the event loop for a third as long.
BATCH = 3000
READ_COUNT = 1000
READ_BLOCK_MS = 1000
# Repos of one batch applied side by side (see `process_entries`).
REPOS_AT_ONCE = 4
# The partition lease is renewed every third of its TTL (MERGEBOT_PROCESSOR_LEASE_TTL_SECONDS).
RENEW_SHARE = 1 / 3
# How often a holder reclaims stale pending entries, re-asks git and re-announces queued work.
TICK_SECONDS = 30.0
RECLAIM_IDLE_MS = 60_000
_CONTROLS = frozenset({EventName.QUEUE_FROZEN, EventName.QUEUE_UNFROZEN})
# What is still open to change by git alone (a push elsewhere, a manual merge to base).
_OPEN = frozenset({CandidateStatus.WAITING, CandidateStatus.READY})


NoteRecord = tuple[str | None, str | None, Note]


@dataclass
class BatchResult:
    repo: str
    base: str | None = None
    applied: int = 0
    skipped: int = 0
    queued: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    notes: list[NoteRecord] = field(default_factory=list)
    interrupts: list[Interrupt] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


class Projector:
    """Applies log entries of one repo to its stored projection and queue.

    The service and `mergebot replay` both use it, the latter over scratch keys.
    """

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        server_config: ServerConfig,
        git: GitFactsSource,
        *,
        clock: Callable[[], datetime] = _now,
        configs: EffectiveConfigs | None = None,
    ) -> None:
        self.server_config = server_config
        self.git = git
        # None: the server's config only (no forge to read the repo's own file with).
        self.configs = configs
        # repo -> (rev, state) of the projection this projector stored last. Taken out while a
        # batch changes the state in place and put back only after it was stored, so a failed
        # batch never leaves a half-changed state here.
        self._held: dict[str, tuple[str, ProjectionState]] = {}
        self.redis = redis
        self.keys = keys
        self.queue = QueueStore(redis, keys)
        self.projections = ProjectionStore(redis, keys)
        self.clock = clock

    async def _load(self, repo: str) -> tuple[ProjectionState, str | None]:
        """The stored projection and its rev: the one this projector stored last when nobody
        stored another since (no 3 MB JSON parse per batch), else read from Redis."""
        held = self._held.pop(repo, None)
        if held is not None and held[0] == await self.projections.rev(repo):
            return held[1], held[0]
        return await self.projections.load_with_rev(repo)

    def _unchanged(self, state: ProjectionState, rev: str | None) -> None:
        """Keep a state that was loaded and not changed (nothing to store)."""
        if rev is not None:
            self._held[state.repo] = (rev, state)

    async def _save(self, state: ProjectionState, notes: list[NoteRecord], slugs: set[str]) -> None:
        rev = await self.projections.save(state, notes, slugs=slugs)
        self._held[state.repo] = (rev, state)

    async def apply(
        self, repo: str, entries: Sequence[LogEntry], *, guard: Callable[[], None] | None = None
    ) -> BatchResult:
        """Fold `entries` (all of `repo`, in log order) in; `guard` runs before every write."""
        state, rev = await self._load(repo)
        result = BatchResult(repo)
        last = entry_order(state.last_entry) if state.last_entry else None
        fresh = [e for e in entries if last is None or entry_order(e.entry_id) > last]
        result.skipped = len(entries) - len(fresh)
        if not fresh:
            self._unchanged(state, rev)
            return result
        touched, events = self.fold_in(state, fresh, result)
        if self.server_config.managed(repo):
            claims = branch_claims(events, self.server_config.repo(repo).base_branch)
            await self._reconcile(state, touched, result, guard, claims)
        for note_entry, note_event, note in result.notes:
            log.info(
                "event_ignored repo=%s entry=%s event=%s code=%s why=%s",
                repo, note_entry, note_event, note.code, note.text,
            )  # fmt: skip
        if guard:
            guard()
        await self._save(state, result.notes, touched)
        await self._interrupt(repo, result)
        return result

    def fold_in(
        self,
        state: ProjectionState,
        entries: Sequence[LogEntry | ParsedEntry],
        result: BatchResult,
    ) -> tuple[set[str], list[CanonicalEvent]]:
        """Fold `entries` into the facts (no git, no queue): the slugs touched and the events."""
        touched: set[str] = set()
        events: list[CanonicalEvent] = []
        managed = self.server_config.managed(state.repo)
        for entry in entries:
            name = entry.name.value
            try:
                event = entry.event()
            except ValidationError as exc:
                note = Note(NoteCode.UNREADABLE, f"stored {name} does not validate: {exc}")
                result.notes.append((entry.entry_id, name, note))
                continue
            events.append(event)
            folded = fold(state.facts, event)
            touched |= folded.slugs
            result.notes += [(entry.entry_id, name, n) for n in folded.notes]
            if not managed:
                note = Note(
                    NoteCode.NOT_MANAGED, f"{state.repo} is not managed: stored, not integrated"
                )
                result.notes.append((entry.entry_id, name, note))
        if entries:
            state.last_entry = entries[-1].entry_id
            result.applied += len(entries)
        return touched, events

    async def settle(self, state: ProjectionState, result: BatchResult) -> dict[str, QueueItem]:
        """Decide every slug of a state folded with `fold_in` alone (replay: git is asked once
        per slug, with one fetch), against an empty queue, and return the queue those decisions
        make, built in memory (`queue_after`): a replay compares it as it is. Neither the
        projection nor the queue is stored; `store` does that."""
        if not self.server_config.managed(state.repo):
            return {}
        base, states = await self._decided(state, set(state.facts.slugs), None)
        result.base = base
        now = self.clock()
        actions = plan(state.repo, base, states, {}, now)
        result.actions += actions
        self._update(state, set(state.facts.slugs), states)
        return queue_after(actions, {}, now)

    async def store(self, state: ProjectionState, result: BatchResult) -> None:
        """Store a settled state whole: its queue, by performing the settled actions on the
        (empty) queue of these keys, and its projection."""
        if result.base is not None:
            await self._perform_all(state.repo, result.base, result.actions, result, None)
        await self._save(state, result.notes, set(state.facts.slugs))

    async def reevaluate(
        self, repo: str, *, guard: Callable[[], None] | None = None
    ) -> BatchResult:
        """Ask git again about every open candidate (git may change without an event)."""
        result = BatchResult(repo)
        if not self.server_config.managed(repo):
            return result
        state, rev = await self._load(repo)
        slugs = {c.slug for c in state.candidates.values() if c.status in _OPEN or c.git_unknown()}
        if not slugs:
            self._unchanged(state, rev)
            return result
        await self._reconcile(state, slugs, result, guard, None)
        if guard:
            guard()
        await self._save(state, result.notes, slugs)
        await self._interrupt(repo, result)
        return result

    async def _reconcile(
        self,
        state: ProjectionState,
        slugs: set[str],
        result: BatchResult,
        guard: Callable[[], None] | None,
        claims: dict[str, str] | None,
    ) -> None:
        repo = state.repo
        base, states = await self._decided(state, slugs, claims)
        result.base = base
        items = await self.queue.get_many(repo, base, list(states))
        actions = plan(repo, base, states, items, self.clock())
        result.actions += actions
        await self._perform_all(repo, base, actions, result, guard)
        self._update(state, slugs, states)

    async def _decided(
        self, state: ProjectionState, slugs: set[str], claims: dict[str, str] | None
    ) -> tuple[str, dict[str, CandidateState]]:
        """The base branch and the new state of every candidate of `slugs` (git asked once)."""
        repo = state.repo
        server = self.server_config.repo(repo)
        git = await self.git.snapshot(repo, server, claims)
        config = await self._effective(repo, server, git)
        rules = Rules.from_config(config)
        states = await asyncio.to_thread(evaluate, state.facts, rules, git, slugs)
        for key, new in states.items():
            old = state.candidates.get(key)
            if old is None or old.status != new.status:
                log.info(
                    "candidate_%s repo=%s slug=%s sha=%s why=%s",
                    new.status, repo, new.slug, new.sha, "; ".join(new.reason_texts()) or "-",
                )  # fmt: skip
        return rules.base, states

    async def _perform_all(
        self,
        repo: str,
        base: str,
        actions: Sequence[Action],
        result: BatchResult,
        guard: Callable[[], None] | None,
    ) -> None:
        for run in _runs(actions):
            if guard:
                guard()
            if isinstance(run, list):
                await self._enqueue(repo, run, result)
            else:
                await self._perform(repo, base, run, result)

    @staticmethod
    def _update(state: ProjectionState, slugs: set[str], states: dict[str, CandidateState]) -> None:
        """The candidates of `slugs` in `state` become `states`."""
        for key in [k for k, c in state.candidates.items() if c.slug in slugs]:
            if key not in states:
                del state.candidates[key]
        state.candidates.update(states)

    async def _effective(self, repo: str, server: RepoConfig, git: GitFacts) -> RepoConfig:
        """The config the integrator will use: the server's plus the repo's own file at the
        base's tip (read once per tip sha; the server's when git cannot name the tip)."""
        if self.configs is None:
            return server
        try:
            tip = await asyncio.to_thread(git.tip, server.base_branch)
        except GitFactsError:
            tip = None
        return await self.configs.get(repo, tip)

    async def _enqueue(self, repo: str, run: list[Enqueue], result: BatchResult) -> None:
        done = await self.queue.enqueue_many([(a.item, a.cause) for a in run])
        for action, queued in zip(run, done, strict=True):
            if queued:
                result.queued.append(action.item.id)
                log.info("candidate_queued repo=%s item=%s", repo, action.item.id)

    async def _perform(self, repo: str, base: str, action: Action, result: BatchResult) -> None:
        match action:
            case Enqueue():
                if await self.queue.enqueue(action.item, cause=action.cause):
                    result.queued.append(action.item.id)
                    log.info("candidate_queued repo=%s item=%s", repo, action.item.id)
            case Move():
                try:
                    await self.queue.transition(
                        repo, base, action.item_id, action.to, cause=action.cause,
                        expect=action.expect, reasons=action.reasons,
                        followup_id=action.followup_id,
                    )  # fmt: skip
                except (InvalidTransitionError, ItemNotFoundError) as exc:
                    # Someone else (the lease holder) moved it first: theirs is the newer truth.
                    note = Note(NoteCode.QUEUE_CHANGE_SKIPPED, f"{action.item_id}: {exc}")
                    result.notes.append((None, None, note))
                    return
                if action.to == Status.QUEUED:
                    result.queued.append(action.item_id)
            case Reschedule():
                await self.queue.reschedule(
                    repo, base, action.item_id, action.ready_at, action.priority
                )
            case Interrupt():
                result.interrupts.append(action)  # sent once the projection is stored

    async def _interrupt(self, repo: str, result: BatchResult) -> None:
        """Signal the lease holder about changed members of its train, after the projection it
        will re-check against was stored."""
        for action in result.interrupts:
            await self.redis.xadd(
                self.keys.train_signals(repo),
                {"item": action.item_id, "cause": action.cause[:500]},
                maxlen=1000,
                approximate=True,
            )
            log.info("train_interrupted repo=%s item=%s why=%s", repo, action.item_id,
                     action.cause)  # fmt: skip


def _runs(actions: Sequence[Action]) -> list[Action | list[Enqueue]]:
    """The actions in order, consecutive enqueues grouped (written in one round trip)."""
    out: list[Action | list[Enqueue]] = []
    for action in actions:
        if isinstance(action, Enqueue):
            last = out[-1] if out else None
            if isinstance(last, list):
                last.append(action)
            else:
                out.append([action])
        else:
            out.append(action)
    return out


def branch_claims(events: Sequence[CanonicalEvent], base: str) -> dict[str, str]:
    """Where the batch says branches are (branch -> sha): the newest `branch_pushed` of each
    branch, else its newest `finalize_ready`, and the base after an `integration_completed`.
    When the mirror already shows all of it, the batch needs no fetch."""
    pushed: dict[str, str] = {}
    finalized: dict[str, str] = {}
    for event in events:
        match event:
            case BranchPushed() if event.remote == REMOTE_NAME:
                pushed[event.branch] = event.sha
            case FinalizeReady():
                finalized[event.branch] = event.sha
            case IntegrationCompleted():
                pushed[base] = event.main_after
    return {**finalized, **pushed}


# -- the service ---------------------------------------------------------------------------------


def git_source(runtime: Runtime) -> GitFactsSource:
    """`runtime.git_facts` when a test set one, else the runtime's mirrors."""
    if runtime.git_facts is None:
        runtime.git_facts = MirrorGitFactsSource(runtime.settings.data_dir, runtime.mirrors)
    return runtime.git_facts


def effective_configs(runtime: Runtime) -> EffectiveConfigs:
    """One per runtime, so a repo's file is read once per base sha across batches."""
    found = runtime.effective_configs
    if found is None or found.server_config is not runtime.server_config:
        found = EffectiveConfigs(runtime.server_config, runtime.forge_for)
        runtime.effective_configs = found
    return found


def projector_for(runtime: Runtime) -> Projector:
    return Projector(
        runtime.redis, runtime.keys, runtime.server_config, git_source(runtime),
        configs=effective_configs(runtime),
    )  # fmt: skip


async def announce(runtime: Runtime, repo: str, base: str) -> None:
    """Tell the READY hook (if any) that (repo, base) has queued work; never fails the caller."""
    hook = runtime.ready_hook
    if hook is None:
        return
    try:
        await hook.candidate_ready(repo, base)
    except Exception:  # the hook is another component: its failure must not stop folding
        log.exception("ready_hook_failed repo=%s base=%s", repo, base)


def _by_repo(entries: Sequence[LogEntry]) -> dict[str, list[LogEntry]]:
    grouped: dict[str, list[LogEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.envelope.repo, []).append(entry)
    return grouped


async def process_entries(
    runtime: Runtime,
    projector: Projector,
    partition: int,
    entries: Sequence[LogEntry],
    *,
    guard: Callable[[], None] | None = None,
) -> list[BatchResult]:
    """Apply and acknowledge a batch read from the group; announce what got queued.

    The repos of a batch are applied side by side (`REPOS_AT_ONCE` at a time): each repo's
    entries stay in log order, and no two repos share a projection, a queue or a mirror, so
    their order against each other changes nothing stored. A repo's apply waits on Redis and
    git (a fetch is tens of milliseconds) more than it computes; one repo after the other, a
    batch over a hundred repos waited a hundred times in a row.

    The batch is acknowledged in one XACK at the end (what was applied before a failure too),
    not once per repo, and an entry given again is skipped by `apply` (it is older than the
    stored checkpoint). A repo that fails does not stop the others; the first failure is raised
    once they are done."""
    applied: list[str] = []
    limit = asyncio.Semaphore(REPOS_AT_ONCE)

    async def one(repo: str, group: list[LogEntry]) -> BatchResult:
        async with limit:
            if guard:
                guard()  # a lost lease stops the repos still waiting before they fetch
            result = await projector.apply(repo, group, guard=guard)
            if guard:
                guard()
            applied.extend(e.entry_id for e in group)
            if any(e.envelope.name in _CONTROLS for e in group):
                # An integrator holding a checked candidate (mergebot.gatekeeper) looks again.
                await runtime.redis.publish(runtime.keys.control_signals(repo), "*")
            if result.queued and result.base:
                await announce(runtime, repo, result.base)
            return result

    try:
        outcomes = await asyncio.gather(
            *(one(repo, group) for repo, group in _by_repo(entries).items()),
            return_exceptions=True,
        )
    finally:
        await runtime.eventlog.ack(GROUP, partition, applied)
    results: list[BatchResult] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        results.append(outcome)
    return results


async def process_available(
    runtime: Runtime, partition: int, consumer: str, *, projector: Projector | None = None
) -> int:
    """Reclaim idle pending entries, then drain what is there now (no blocking); how many."""
    projector = projector or projector_for(runtime)
    await runtime.eventlog.ensure_group(GROUP, partition)
    done = 0
    reclaimed = await runtime.eventlog.reclaim(GROUP, consumer, partition, min_idle_ms=0)
    if reclaimed:
        await process_entries(runtime, projector, partition, reclaimed)
        done += len(reclaimed)
    while True:
        entries = await read_batch(runtime, consumer, partition)
        if not entries:
            return done
        await process_entries(runtime, projector, partition, entries)
        done += len(entries)


async def read_batch(
    runtime: Runtime, consumer: str, partition: int, *, block_ms: int | None = None
) -> list[LogEntry]:
    """The next batch of new entries: up to `BATCH`, read `READ_COUNT` at a time while the
    backlog has more (only the first read waits, up to `block_ms`)."""
    log_ = runtime.eventlog
    count = min(READ_COUNT, BATCH)
    entries = await log_.read_group(GROUP, consumer, partition, count=count, block_ms=block_ms)
    last = len(entries)
    while last == READ_COUNT and len(entries) < BATCH:
        count = min(READ_COUNT, BATCH - len(entries))
        more = await log_.read_group(GROUP, consumer, partition, count=count)
        entries += more
        last = len(more)
    return entries


def _managed_repos_in(runtime: Runtime, known: set[str], partition: int) -> list[str]:
    config = runtime.server_config
    repos = set(config.repos) | {r for r in known if config.managed(r)}
    return sorted(r for r in repos if runtime.keys.partition_of(r) == partition)


async def tick(runtime: Runtime, projector: Projector, partition: int, lease: Lease) -> None:
    """Periodic work of the partition holder: re-ask git, re-announce queued work, compact
    (daily, or when `mergebot compact` asked)."""
    retention = await compaction_due(runtime, partition)
    if retention is not None:
        lease.ensure()
        await compact_partition(runtime, partition, retention=timedelta(days=retention))
    known = {str(r) for r in await runtime.redis.smembers(runtime.keys.repos())}
    for repo in _managed_repos_in(runtime, known, partition):
        lease.ensure()
        await projector.reevaluate(repo, guard=lease.ensure)
        base = runtime.server_config.repo(repo).base_branch
        if await projector.queue.next_queued(repo, base) is not None:
            await announce(runtime, repo, base)


async def _hold_partition(
    runtime: Runtime, partition: int, consumer: str, lease: Lease, stop: asyncio.Event
) -> None:
    projector = projector_for(runtime)
    log_ = runtime.eventlog
    await log_.ensure_group(GROUP, partition)
    # We hold the partition: whatever is still pending belongs to a holder that died.
    reclaimed = await log_.reclaim(GROUP, consumer, partition, min_idle_ms=0)
    if reclaimed:
        log.info("entries_reclaimed partition=%s count=%s", partition, len(reclaimed))
        await process_entries(runtime, projector, partition, reclaimed, guard=lease.ensure)
    await tick(runtime, projector, partition, lease)
    next_tick = asyncio.get_running_loop().time() + TICK_SECONDS
    while not stop.is_set() and not lease.lost.is_set():
        entries = await read_batch(runtime, consumer, partition, block_ms=READ_BLOCK_MS)
        if entries:
            await process_entries(runtime, projector, partition, entries, guard=lease.ensure)
        if asyncio.get_running_loop().time() >= next_tick:
            stale = await log_.reclaim(GROUP, consumer, partition, min_idle_ms=RECLAIM_IDLE_MS)
            if stale:
                await process_entries(runtime, projector, partition, stale, guard=lease.ensure)
            await tick(runtime, projector, partition, lease)
            next_tick = asyncio.get_running_loop().time() + TICK_SECONDS


async def run_partition(runtime: Runtime, partition: int, stop: asyncio.Event) -> None:
    """Hold the partition when free, fold it; on any failure back off and try again."""
    consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    ttl = runtime.settings.processor_lease_ttl_seconds
    lease = Lease(
        runtime.redis, runtime.keys, f"partition {partition}", "events", consumer,
        ttl, ttl * RENEW_SHARE,
        key=runtime.keys.processor_lease(partition),
    )  # fmt: skip
    backoff = 0.5
    while not stop.is_set():
        try:
            async with lease.held():
                log.info("partition_held partition=%s consumer=%s", partition, consumer)
                await _hold_partition(runtime, partition, consumer, lease, stop)
            backoff = 0.5
        except LeaseBusyError:
            # Wake when the holder's lease runs out: a holder that died (SIGKILL) is replaced
            # within its TTL, not within the TTL plus a polling period.
            backoff = await lease.expires_in(default=ttl) + 0.05
        except LeaseLostError:
            log.warning("partition_lost partition=%s consumer=%s", partition, consumer)
        except (RedisError, OSError) as exc:
            log.warning("processor_retrying partition=%s error=%s", partition, exc)
            backoff = min(backoff * 2, 30.0)
        except Exception:  # a bug must not silently end folding for good: log it, retry later
            log.exception("processor_failed partition=%s", partition)
            backoff = min(backoff * 2, 30.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)


async def processor_service(runtime: Runtime, stop: asyncio.Event) -> None:
    await asyncio.gather(*(run_partition(runtime, p, stop) for p in runtime.keys.all_partitions()))
