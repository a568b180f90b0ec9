"""The integrator's runner: holds the lease of one (repo, base), asks the planner what to do with
the train, records each step, then performs it (SPEC §5, §6, §11, §13).

The loop: read the queue, build a `Snapshot` (the cars this holder runs, the base tip of the
last fetch, what base contains, the latest readiness answers, the window and the hold), ask
`planner.plan`, perform its actions in order, and ask again; when the plan is empty, wait for
something to happen — a car's checks finished (each car's checks run as a task of their own),
the queue's change stream moved (new work), or the processor signalled that a candidate in the
train changed (`keys.train_signals`: withdrawn, superseded, unapproved) — never by polling.

Each step is written before it is performed: the attempt record of a member (parent, integration
commit, branch) before its integration branch is pushed; the landed / blocked outcome before the
outcome event and the item move. `Lease.ensure()` runs before every write, and the whole train is
cancelled the moment the lease is lost (check commands with it: their process groups are killed),
so a holder that lost its lease stops before its next write — and even one that does not know yet
cannot move base from a state it did not see (the push is a compare-and-swap).

Crash recovery runs whenever the lease is taken (`_recover`): leftover worktrees are removed;
each item left `in_progress` is finished from its record (blocked with the same follow-up, or
integrated when its commit reached base), or goes back to `queued` — in its place in the queue,
so the next train forms in the same order; stale integration branches are deleted. Outcome events
have deterministic ids, so finishing twice emits once. The dead holder's check processes die
with it; checks whose outcome was not recorded run again.

`mode = "shadow"` does all of it locally: nothing is pushed, forge checks are "would wait for",
and a car "lands" on a base that does not move — items end `integrated` with `would_integrate`.

When the train is empty and nothing is queued, the holder waits `grace_seconds` for late work,
writes a checkpoint, releases the lease and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from mergebot.attempts import (
    Attempt,
    AttemptStore,
    Outcome,
    blocked_event,
    completed_event,
    integration_fields,
)
from mergebot.checks import CheckSignals, ChecksOutcome, run_checks
from mergebot.config import REMOTE_NAME, ConfigError, Mode, RepoConfig
from mergebot.cutover_facts import gated
from mergebot.events import Envelope
from mergebot.forge.repo_config import (
    effective_repo_config,
    operator_pinned,
    report_config_error,
)
from mergebot.gatekeeper import Gatekeeper
from mergebot.git.merge import Candidate, PushStatus
from mergebot.git.mirror import GitError
from mergebot.git.workspace import AlreadyOnBase, Conflict, Integration, Workspace, worktrees_root
from mergebot.integrator import record as train_record
from mergebot.integrator.planner import (
    Action,
    Advance,
    Batching,
    Bisect,
    Block,
    Build,
    CancelChecks,
    Car,
    Checks,
    Decision,
    Drop,
    Failure,
    KnownRed,
    Land,
    Member,
    Merge,
    NewCar,
    Promote,
    Recheck,
    Resize,
    Settle,
    Shrink,
    Snapshot,
    StartChecks,
    TakeOut,
    Verdict,
    Window,
    batch_wait,
    plan,
)
from mergebot.integrator.recheck import recheck_many
from mergebot.integrator.view import car_label, stacked_on
from mergebot.queue import FINAL, IntegrationRecord, InvalidTransitionError, QueueItem, Status
from mergebot.runtime import Runtime
from mergebot.sandbox import sandbox_for
from mergebot.store.eventlog import EventConflictError
from mergebot.store.flaky import FlakyLog
from mergebot.store.lease import Lease, LeaseBusyError, LeaseLostError
from mergebot.store.queue import ItemNotFoundError, QueueStore

log = logging.getLogger("mergebot.integrator")

DEFAULT_MAX_REBUILDS = 3
RECENT_CHECKS = 20  # check durations kept for the ETA
WATCH_BLOCK_MS = 1000
# Test hook: a process whose environment names a step here SIGKILLs itself when it reaches it.
CRASH_ENV = "MERGEBOT_TEST_CRASH_AT"
STEPS = (
    "picked",  # queued -> in_progress done
    "built",  # attempt recorded, nothing pushed
    "branch_pushed",  # integration branch on the remote
    "checked",  # checks passed
    "base_pushed",  # base moved (CAS push returned)
    "landed_recorded",  # outcome written to the attempt record
    "completed_emitted",  # integration_completed in the log
    "integrated",  # item moved to integrated
    "blocked_emitted",  # integration_blocked in the log
    "blocked",  # item moved to blocked
    "cleaned",  # integration branch deleted, record dropped
)

T = TypeVar("T")


_reached: dict[str, int] = {}


def crash_point(step: str) -> None:
    """Kill this process right here when the test hook names `step` (see CRASH_ENV), or
    `step#n`: the n-th time it is reached."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted is None or wanted.split("#")[0] != step:
        return
    _reached[step] = _reached.get(step, 0) + 1
    if "#" not in wanted or _reached[step] == int(wanted.split("#")[1]):
        os.kill(os.getpid(), signal.SIGKILL)


def default_owner() -> str:
    return f"integrator:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


class StopDrainError(Exception):
    """The drain cannot go on for now (invalid repo config, git unavailable); items stay queued
    (or go back to the queue at the next recovery) and the next wake-up or sweep tries again."""


@dataclass
class DrainResult:
    repo: str
    base: str
    owner: str
    status: str = "done"  # done | busy | lost | stopped
    message: str = ""
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (item id, final status)

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "base": self.base,
            "owner": self.owner,
            "status": self.status,
            "message": self.message,
            "outcomes": [{"item": i, "status": s} for i, s in self.outcomes],
        }


@dataclass
class _Slot:
    """What the runner holds for one car besides the planner's view of it."""

    built: Integration | None = None
    index: int = 0  # its worktree slot (`slot-<index>`), kept while the car is in the train
    attempt: Attempt | None = None
    task: asyncio.Task[ChecksOutcome] | None = None
    checks_started: float | None = None
    outcome: ChecksOutcome | None = None


class Integrator:
    """Runs the train of one (repo, base) under its lease."""

    def __init__(
        self,
        runtime: Runtime,
        repo: str,
        base: str | None = None,
        *,
        owner: str | None = None,
        max_rebuilds: int = DEFAULT_MAX_REBUILDS,
        poll_seconds: float = 30.0,
        hold: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.repo = repo
        self.server_repo_config = runtime.server_config.repo(repo)
        self.base = base or self.server_repo_config.base_branch
        self.owner = owner or default_owner()
        self.max_rebuilds = max_rebuilds
        self.poll_seconds = poll_seconds
        self.hold = hold
        self.queue = QueueStore(runtime.redis, runtime.keys)
        self.attempts = AttemptStore(runtime.redis, runtime.keys)
        self.mirror = runtime.mirror_for(repo)
        self.forge = runtime.forge_for(repo)
        self._lease: Lease | None = None
        # The train, as this holder runs it.
        self.config = self.server_repo_config
        self.cars: list[Car] = []
        self.slots: dict[str, _Slot] = {}
        self.items: dict[str, QueueItem] = {}
        self.readiness: dict[str, Verdict] = {}
        self.approvers: dict[str, tuple[str, ...]] = {}
        self.base_tip: str | None = None
        self.contained: set[str] = set()
        self.window = Window()
        self.check_seconds: list[float] = []
        self._remote_tip: str | None = None
        self._gate_hold: str | None = None  # why the gate holds base, until asked again
        self._gate_again = 0.0  # when to ask it again (time.monotonic)
        self._controls = False  # a freeze or unfreeze was folded since the gate was asked
        self._gate_said: str | None = None  # the hold recorded as `waiting` (status shows it)
        self._wake = asyncio.Event()
        self._signalled: set[str] = set()
        self._batch_wait_until: datetime | None = None  # a short batch waits until then
        self._recorded: str | None = None  # the train record last written

    # -- helpers -------------------------------------------------------------------------------
    def _ctx(self, item: QueueItem | None = None) -> str:
        text = f"repo={self.repo} base={self.base} owner={self.owner}"
        return f"{text} slug={item.slug} sha={item.sha}" if item else text

    def _ensure(self) -> None:
        assert self._lease is not None
        self._lease.ensure()

    def _workspace(self, config: RepoConfig) -> Workspace:
        root = worktrees_root(self.runtime.settings.data_dir, self.repo)
        return Workspace(self.mirror, root, prefix=config.integration_branch_prefix)

    async def _git(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    @property
    def shadow(self) -> bool:
        return self.config.mode is Mode.SHADOW

    async def _move(
        self, item: QueueItem, to: Status, cause: str, expect: Status, **kw: Any
    ) -> QueueItem | None:
        """Move the item; None when someone else moved it first (theirs is the newer truth)."""
        self._ensure()
        try:
            return await self.queue.transition(
                self.repo, self.base, item.id, to, cause=cause, expect=expect, **kw
            )
        except (InvalidTransitionError, ItemNotFoundError) as exc:
            log.warning("queue_change_skipped %s to=%s why=%s", self._ctx(item), to, exc)
            return None

    async def _emit(self, envelope: Envelope) -> None:
        self._ensure()
        try:
            await self.runtime.eventlog.append(envelope)
        except EventConflictError:
            # The same decision was recorded before with other content (another holder raced
            # us after a lease loss): the stored one stands.
            log.warning("outcome_event_exists repo=%s id=%s", self.repo, envelope.id)

    # -- the drain -----------------------------------------------------------------------------
    async def drain(self) -> DrainResult:
        """Take the lease, recover, run the train until it and the queue stay empty, release."""
        result = DrainResult(self.repo, self.base, self.owner)
        config = self.server_repo_config
        lease = Lease(
            self.runtime.redis,
            self.runtime.keys,
            self.repo,
            self.base,
            self.owner,
            config.lease_ttl_seconds,
            config.lease_renew_seconds,
        )
        self._lease = lease
        while True:
            try:
                async with lease.held():
                    log.info("integrator_started %s", self._ctx())
                    await self._hold(lease, result)
            except LeaseBusyError:
                holder = await lease.holder()
                result.status = "busy"
                result.message = f"lease held by {holder.owner if holder else 'someone else'}"
                log.info("integrator_lease_busy %s %s", self._ctx(), result.message)
                return result
            except LeaseLostError as exc:
                result.status = "lost"
                result.message = str(exc)
                log.warning("integrator_lease_lost %s", self._ctx())
                return result
            except StopDrainError as exc:  # raised by recovery (the train stops inside _hold)
                result.status = "stopped"
                result.message = str(exc)
                log.warning("integrator_paused %s why=%s", self._ctx(), exc)
                return result
            log.info(
                "integrator_stopped %s status=%s handled=%d",
                self._ctx(),
                result.status,
                len(result.outcomes),
            )
            if result.status != "done":
                return result
            # Work that arrived between our last look and the release would otherwise wait for
            # the next event: the hook of another process may have found the lease still held.
            if await self.queue.next_queued(self.repo, self.base) is None:
                return result

    async def _hold(self, lease: Lease, result: DrainResult) -> None:
        await self._guarded(lease, self._recover(result))
        try:
            await self._guarded(lease, self._run(result))
        except StopDrainError as exc:
            result.status = "stopped"
            result.message = str(exc)
            log.warning("integrator_paused %s why=%s", self._ctx(), exc)
        lease.ensure()
        self.cars = []  # what is left in flight goes back to the queue at the next recovery
        await self._publish()
        await self._checkpoint(result)

    async def _guarded(self, lease: Lease, work: Coroutine[Any, Any, T]) -> T:
        """Run `work`, cancelling it the moment the lease is lost."""
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(lease.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled():
                task.exception()  # read: when this wait itself is cancelled, nobody else will
            lost.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lost
        if task.cancelled():
            raise LeaseLostError(f"lease of {self.repo} ({self.base}) lost during work")
        return task.result()

    async def _checkpoint(self, result: DrainResult) -> None:
        counts: dict[str, int] = {}
        for _item, status in result.outcomes:
            counts[status] = counts.get(status, 0) + 1
        mapping: dict[str, str] = {
            "owner": self.owner,
            "at": _now().isoformat(),
            "handled": str(len(result.outcomes)),
            **{f"count_{k}": str(v) for k, v in counts.items()},
        }
        if result.outcomes:
            mapping["last_item"] = result.outcomes[-1][0]
        key = self.runtime.keys.checkpoint(self.repo, self.base)
        await self.runtime.redis.hset(key, mapping=cast(Any, mapping))

    # -- the train loop ------------------------------------------------------------------------
    async def _run(self, result: DrainResult) -> None:
        self.window = await self._initial_window()
        watchers = [
            asyncio.ensure_future(self._watch()),
            asyncio.ensure_future(self._watch_controls()),
        ]
        loop = asyncio.get_running_loop()
        grace_until: float | None = None
        try:
            while True:
                self._collect_checks()
                await self._read_signals()
                await self._ask_gate_again()
                queued = await self._queued()
                snapshot = self._snapshot(queued)
                actions = plan(snapshot)
                if actions:
                    grace_until = None
                    self._batch_wait_until = None
                    for action in actions:
                        await self._perform(action, result)
                    await self._publish()
                    continue
                waiting = any(s.task is not None for s in self.slots.values())
                if not self.cars and not queued:
                    if grace_until is None:
                        grace_until = loop.time() + self.server_repo_config.grace_seconds
                    left = grace_until - loop.time()
                    if left <= 0:
                        break
                    await self._sleep(left)
                else:
                    grace_until = None
                    seconds = None if waiting else self.poll_seconds
                    if self._gate_hold is not None:
                        again = max(self._gate_again - time.monotonic(), 0.0)
                        seconds = again if seconds is None else min(seconds, again)
                    held = batch_wait(snapshot)  # a short batch waiting for company
                    if held is not None:
                        seconds = held if seconds is None else min(seconds, held)
                        if self._batch_wait_until is None:  # shown: why nothing moves yet
                            self._batch_wait_until = _now() + timedelta(seconds=held)
                            await self._publish()
                    await self._sleep(seconds)
                # Queued candidates are re-checked before they get a car, every round.
                members = {m.item_id for car in self.cars for m in car.members}
                self.readiness = {i: v for i, v in self.readiness.items() if i in members}
        finally:
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if self._gate_said is not None:
                with contextlib.suppress(Exception):
                    await Gatekeeper(self.runtime, self.repo, self.base).clear_waiting()
            await self._stop_all()

    async def _sleep(self, seconds: float | None) -> None:
        """Until a car's checks finish, the watcher sees a change or signal, or `seconds`."""
        tasks: set[asyncio.Future[Any]] = {
            s.task for s in self.slots.values() if s.task is not None
        }
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({*tasks, woken}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken
        self._wake.clear()

    async def _watch(self) -> None:
        """Wake the loop on every entry of the queue's change stream (new work) and of the train
        signals (a member changed); remember which items were signalled."""
        keys = self.runtime.keys
        streams = {keys.changes(self.repo): "$", keys.train_signals(self.repo): "$"}
        for name in list(streams):
            rows = await self.runtime.redis.xrevrange(name, count=1)
            streams[name] = str(rows[0][0]) if rows else "0-0"
        while True:
            found = cast(
                list[tuple[str, list[tuple[str, dict[str, str]]]]],
                await self.runtime.redis.xread(cast(Any, streams), count=100, block=WATCH_BLOCK_MS),
            )
            if not found:
                continue
            for stream, entries in found:
                for entry_id, fields in entries:
                    streams[str(stream)] = str(entry_id)
                    if str(stream) == keys.train_signals(self.repo):
                        self._signalled.add(str(fields.get("item", "")))
            self._wake.set()

    async def _watch_controls(self) -> None:
        """Wake the loop when a freeze or unfreeze was folded (the processor publishes on
        `keys.control_signals`): a held base may move now."""
        channel = self.runtime.keys.control_signals(self.repo)
        async with CheckSignals(self.runtime.redis, channel) as signals:
            while True:
                if await signals.wait("*", 3600):
                    self._controls = True
                    self._wake.set()

    async def _ask_gate_again(self) -> None:
        """While the gate holds base: after a freeze or unfreeze, or when the hold is due to be
        looked at again, drop it (after a fetch) so the planner proposes the advance again."""
        if self._gate_hold is None:
            return
        if not self._controls and time.monotonic() < self._gate_again:
            return
        self._controls = False
        self._gate_hold = None
        await self._fetch()

    async def _read_signals(self) -> None:
        """Re-check the members the processor said changed (a fetch, then readiness)."""
        members = {m.item_id: car for car in self.cars for m in car.members}
        named = [i for i in self._signalled if i in members]
        self._signalled.clear()
        if not named:
            return
        log.info("train_members_rechecked %s items=%s", self._ctx(), ",".join(sorted(named)))
        await self._recheck(named)

    async def _queued(self) -> list[QueueItem]:
        active = await self.queue.active(self.repo, self.base)
        for item in active:
            self.items[item.id] = item
        return [i for i in active if i.status is Status.QUEUED]

    def _snapshot(self, queued: Sequence[QueueItem]) -> Snapshot:
        base_tip = self.base_tip or ""
        return Snapshot(
            cars=tuple(self.cars),
            queue=tuple(Member(i.id, i.slug, i.sha, i.ready_at.timestamp()) for i in queued),
            base_tip=base_tip,
            contained=frozenset(self.contained | {base_tip}),
            readiness=dict(self.readiness),
            window=self.window,
            hold=self.hold or self._gate_hold,
            max_base_moves=self.max_rebuilds,
            batch=Batching(self.config.batch.max_size, self.config.batch.wait_seconds),
            now=time.time(),
        )

    def _car(self, key: str) -> tuple[int, Car]:
        for index, car in enumerate(self.cars):
            if car.key == key:
                return index, car
        raise KeyError(key)

    def _set(self, car: Car) -> None:
        index, _ = self._car(car.key)
        self.cars[index] = car

    # -- performing actions --------------------------------------------------------------------
    async def _record(self) -> None:
        """Write the train as it stands, before the step planned from it is performed."""
        text = train_record.dump(self.cars)
        if text == self._recorded:
            return
        self._ensure()
        await self.runtime.redis.set(self.runtime.keys.train_record(self.repo, self.base), text)
        self._recorded = text

    async def _perform(self, action: Action, result: DrainResult) -> None:
        await self._record()
        match action:
            case Recheck(item_ids):
                await self._recheck(list(item_ids))
            case Settle():
                await self._settle(action, result)
            case NewCar(car):
                await self._new_car(car)
            case Build():
                await self._build(action)
            case StartChecks(key):
                self._start_checks(key)
            case CancelChecks(key):
                await self._cancel_checks(key)
            case Advance():
                if not await self._held(action):
                    await self._advance(action)
            case Land():
                await self._land_car(action, result)
            case Block(key, reason, details):
                await self._block_car(key, reason, dict(details), result)
            case TakeOut():
                await self._take_out(action, result)
            case Shrink(key, members):
                await self._discard(key)
                _, car = self._car(key)
                self._set(car.rebuilt(members=members))
            case Drop(key):
                await self._discard(key)
                self.cars.pop(self._car(key)[0])
                self.slots.pop(key, None)
            case Resize(size):
                log.info("train_window_resized %s window=%d", self._ctx(), size)
                self.window = replace(self.window, size=size)
            case Bisect(key, halves):
                await self._replace_cars((key,), halves)
                log.info(
                    "batch_bisected %s car=%s halves=%s",
                    self._ctx(),
                    key,
                    " | ".join(",".join(m.slug for m in h.members) for h in halves),
                )
            case KnownRed(key, parent, failure):
                await self._known_red(key, parent, failure)
            case Promote(key):
                index, car = self._car(key)
                self.cars.pop(index)
                self.cars.insert(0, car.stacked())
                log.info("bisection_half_promoted %s car=%s", self._ctx(), key)
            case Merge(keys, car):
                await self._replace_cars(keys, (car,))
                log.info(
                    "bisection_rest_merged %s car=%s size=%d",
                    self._ctx(),
                    car.key,
                    len(car.members),
                )

    async def _fetch(self) -> None:
        try:
            await self._git(self.mirror.fetch)
        except GitError as exc:
            raise StopDrainError(f"fetch failed: {exc}") from None
        await self._refresh_base()

    async def _refresh_base(self) -> None:
        """The base tip of the last fetch, and which car commits it contains (asked of git only
        when the tip changed; in shadow mode the train's own base stands while the remote's
        does not move)."""
        tip = await self._git(self.mirror.remote_branch, self.base)
        if tip is None:
            raise StopDrainError(f"base branch {self.base!r} does not exist on the remote")
        if tip == self._remote_tip:
            return
        self._remote_tip = tip
        commits = [c.commit for c in self.cars if c.commit is not None]
        found = await self._git(self.mirror.contained, tip, commits) if commits else []
        self.contained = set(found)
        self.base_tip = tip

    async def _load_config(self, item: QueueItem) -> None:
        """The effective config (server file + the repo's own file at base); all or nothing."""
        try:
            config = await effective_repo_config(self.forge, self.runtime.server_config, self.repo)
        except ConfigError as exc:
            with contextlib.suppress(Exception):
                await report_config_error(
                    self.forge,
                    repo=self.repo,
                    slug=item.slug,
                    sha=item.sha,
                    base=self.base,
                    error=exc,
                    templates_dir=self.runtime.server_config.templates_dir,
                )
            raise StopDrainError(f"the repo's configuration is invalid: {exc}") from None
        # The server file as it is now (it is re-read on SIGHUP), its mode through the cutover gate.
        server = self.runtime.server_config.repo(self.repo)
        self.config = await gated(
            self.runtime, self.repo, operator_pinned(config, server, self.base)
        )
        pipeline = self.config.pipeline
        if not pipeline.adaptive:
            self.window = Window(pipeline.depth, False, pipeline.max_depth)
        else:
            size = min(max(self.window.size, 1), pipeline.max_depth)
            self.window = Window(size, True, pipeline.max_depth)

    async def _recheck(self, item_ids: list[str]) -> None:
        await self._fetch()
        items = [self.items[i] for i in item_ids if i in self.items]
        if not items:
            return
        await self._load_config(items[0])
        answers = await recheck_many(
            self.runtime.redis, self.runtime.keys, self.mirror, self.config, items
        )
        for item in items:
            answer = answers[item.id]
            if answer.decision is Decision.UNKNOWN and item.status is Status.QUEUED:
                why = "; ".join(answer.reasons)
                raise StopDrainError(f"git could not be asked about {item.slug}: {why}")
            if answer.decision is Decision.UNKNOWN:
                continue  # a member: ask again at the next signal; it stays in the train
            self.readiness[item.id] = answer.verdict()
            self.approvers[item.id] = tuple(answer.approvers)

    async def _settle(self, action: Settle, result: DrainResult) -> None:
        item = self.items[action.item_id]
        reasons = list(action.reasons)
        if action.to is Status.BLOCKED:
            # Its integration_blocked is in the log already (another holder's, or a replay).
            moved = await self._move(item, Status.IN_PROGRESS, action.cause, Status.QUEUED)
            if moved is not None:
                await self._move(
                    moved,
                    Status.BLOCKED,
                    action.cause,
                    Status.IN_PROGRESS,
                    followup_id=action.followup_id,
                    reasons=reasons,
                )
        else:
            await self._move(item, action.to, action.cause, Status.QUEUED, reasons=reasons)
        self.readiness.pop(item.id, None)
        result.outcomes.append((item.id, action.to.value))

    async def _new_car(self, car: Car) -> None:
        below = next((c for c in reversed(self.cars) if not c.failed), None)
        stacked = ", ".join(m.slug for m in below.members) if below else "base"
        batch = [m.slug for m in car.members] if len(car.members) > 1 else []
        members: list[Member] = []
        for member in car.members:
            started = await self._move(
                self.items[member.item_id],
                Status.IN_PROGRESS,
                f"integration started by {self.owner}",
                Status.QUEUED,
                reasons=[],
                integration=IntegrationRecord(
                    owner=self.owner,
                    mode=self.config.mode.value,
                    car=len(self.cars) + 1,
                    stacked_on=stacked,
                    **({"batch": batch} if batch else {}),
                ),
            )
            if started is None:
                self.readiness.pop(member.item_id, None)
                continue
            self.items[member.item_id] = started
            members.append(member)
            log.info(
                "integration_started %s method=%s mode=%s position=%d batch=%d",
                self._ctx(started),
                self.config.merge_method,
                self.config.mode,
                len(self.cars) + 1,
                len(car.members),
            )
        if not members:
            return
        crash_point("picked")
        car = replace(car, key=members[0].item_id, members=tuple(members))
        self.cars.append(car)
        self.slots[car.key] = _Slot()

    async def _show_place(self, car: Car) -> None:
        """A car built again — a car ahead failed or left, a bisection split it — may stand
        elsewhere in the train than where its members started: record their place as the queue
        API shows it (position, what it stands on, its batch), so their check run and chat
        message show it too (the reporter and the notifier read the record's change)."""
        index, _ = self._car(car.key)
        ahead = self.cars[:index]
        labels = {c.commit: car_label([m.slug for m in c.members]) for c in ahead if c.commit}
        previous = car_label([m.slug for m in ahead[-1].members]) if ahead else None
        stacked = stacked_on(car.parent, car.on_base, labels, previous)
        batch = [m.slug for m in car.members] if len(car.members) > 1 else []
        place = IntegrationRecord(car=index + 1, stacked_on=stacked, batch=batch)
        for member in car.members:
            item = self.items.get(member.item_id)
            if item is None or item.status is not Status.IN_PROGRESS:
                continue
            shown = item.integration
            if (shown.car, shown.stacked_on, shown.batch) == (index + 1, stacked, batch):
                continue
            self._ensure()
            moved = await self.queue.annotate(
                self.repo,
                self.base,
                item.id,
                place,
                expect=Status.IN_PROGRESS,
                cause=f"rebuilt as car {index + 1} on {stacked}",
            )
            if moved is not None:
                self.items[item.id] = moved
                log.info("car_moved %s car=%d stacked_on=%s", self._ctx(moved), index + 1, stacked)

    async def _replace_cars(self, keys: Sequence[str], cars: Sequence[Car]) -> None:
        """Cars `keys` (consecutive) give way to `cars` with the same members (a bisection, or
        the halves left after a culprit merged again); their builds are dropped."""
        index, _ = self._car(keys[0])
        for key in keys:
            await self._discard(key)
            self.slots.pop(key, None)
        self.cars[index : index + len(keys)] = list(cars)
        for car in cars:
            self.slots[car.key] = _Slot()

    async def _known_red(self, key: str, parent: str, failure: Failure) -> None:
        """The car is a tree already seen red: failed without a check run. Built there already
        (it was stacked on the green half), it keeps its commit for the follow-up."""
        _, car = self._car(key)
        if car.parent != parent:
            await self._discard(key)
            self.slots.setdefault(key, _Slot()).attempt = self._new_attempt(car.rebuilt(), parent)
        log.info("known_red %s car=%s reason=%s", self._ctx(), key, failure.reason)
        self._set(car.known_red(parent, failure))

    def _new_attempt(self, car: Car, parent: str | None) -> Attempt:
        return Attempt(
            item_id=car.members[0].item_id,
            attempt=max(car.generation, 1),
            mode=self.config.mode,
            method=self.config.merge_method,
            base_sha=parent,
            batch=[m.slug for m in car.members] if len(car.members) > 1 else [],
        )

    async def _build(self, action: Build) -> None:
        await self._discard(action.key, keep_branch=True)
        _, car = self._car(action.key)
        car = car.rebuilt(
            generation=car.generation + 1, base_moves=car.base_moves + int(action.base_moved)
        )
        if action.base_moved:
            log.info(
                "base_moved_rebuilding %s car=%s attempt=%d", self._ctx(), car.key, car.generation
            )
        workspace = self._workspace(self.config)
        candidates = [
            Candidate(item.slug, item.branch, item.sha, self.approvers.get(item.id, ()))
            for item in (self.items[m.item_id] for m in car.members)
        ]
        attempt = self._new_attempt(car, action.parent)
        slot = self.slots.setdefault(car.key, _Slot())
        taken = {s.index for k, s in self.slots.items() if k != car.key}
        slot.index = min(set(range(len(self.slots) + 1)) - taken)
        built_on = replace(car, parent=action.parent, on_base=action.on_base)
        await self._show_place(built_on)
        try:
            built = await asyncio.to_thread(
                workspace.build_batch,
                candidates,
                self.base,
                self.config.merge_method,
                action.parent,
                slot=slot.index,
                files=bool(self.config.checks.commands),
            )
        except GitError as exc:
            slot.attempt = attempt
            self._set(replace(built_on, failure=Failure("merge_conflict", {"message": str(exc)})))
            return
        if isinstance(built, AlreadyOnBase):
            slot.attempt = attempt.model_copy(update={"commit": action.parent})
            self._set(replace(built_on, commit=action.parent))
            return
        if isinstance(built, Conflict):
            details = {
                "files": list(built.files),
                "message": built.message,
                "base_sha": built.base_sha,
            }
            slot.attempt = attempt
            self._set(replace(built_on, failure=Failure("merge_conflict", details)))
            return
        slot.built = built
        attempt = attempt.model_copy(
            update={"commit": built.commit, "branch": built.branch, "pushed": not self.shadow}
        )
        slot.attempt = attempt
        for _item, member_attempt in self._member_attempts(car):
            self._ensure()
            await self.attempts.put(self.repo, self.base, member_attempt)
        crash_point("built")
        self._set(replace(built_on, commit=built.commit))
        if self.shadow:
            return
        self._ensure()
        pushed = await self._git(workspace.push_branch, built)
        if pushed.status is not PushStatus.OK:
            message = f"could not push {built.branch}: {pushed.message}"
            self._set(
                replace(
                    built_on,
                    commit=built.commit,
                    failure=Failure("push_rejected", {"message": message}),
                )
            )
            return
        crash_point("branch_pushed")

    def _start_checks(self, key: str) -> None:
        _, car = self._car(key)
        slot = self.slots[key]
        assert slot.built is not None
        assert car.commit is not None
        slot.checks_started = time.monotonic()
        slot.outcome = None
        slot.task = asyncio.ensure_future(self._checked(key, car.commit, slot))
        self._set(replace(car, checks=Checks.RUNNING))
        log.info("checks_started %s car=%s commit=%s", self._ctx(), key, car.commit[:7])

    async def _checked(self, key: str, sha: str, slot: _Slot) -> ChecksOutcome:
        """The car's checks, failed ones run again up to `checks.retry_failed` times; a check
        that failed and then passed on this commit is recorded as flaky."""
        assert slot.built is not None
        config = self.config
        outcome = await run_checks(
            config.checks,
            worktree=slot.built.worktree or self.mirror.path,
            forge=self.forge,
            repo=self.repo,
            sha=sha,
            prefix=config.integration_branch_prefix,
            redis=self.runtime.redis,
            signal_channel=self.runtime.keys.check_signals(self.repo),
            shadow=self.shadow,
            extra_secret_names=config.secret_env_names(),
            poll_seconds=self.poll_seconds,
            sandbox=sandbox_for(self.runtime.settings),
            on_check=lambda name, kind: self._running(key, name, kind),
        )
        if outcome.flaky and not self.shadow:
            log.info("checks_flaky %s sha=%s checks=%s", self._ctx(), sha[:7], outcome.flaky)
            await FlakyLog(self.runtime.redis, self.runtime.keys).record(
                self.repo, outcome.flaky, sha
            )
        return outcome

    async def _running(self, key: str, name: str, kind: str) -> None:
        """Record which check of car `key` runs now, and since when (shown on the dashboard)."""
        slot = self.slots.get(key)
        if slot is None or slot.attempt is None:
            return
        running = {"name": name, "kind": kind, "started_at": _now().isoformat()}
        slot.attempt = slot.attempt.model_copy(update={"running": running})
        self._ensure()
        await self.attempts.put(self.repo, self.base, slot.attempt)

    def _collect_checks(self) -> None:
        """Cars whose checks finished take their outcome (a check that crashed is a bug: loud)."""
        for key, slot in self.slots.items():
            task = slot.task
            if task is None or not task.done():
                continue
            slot.task = None
            outcome = task.result()  # an exception here is a bug: let it end the drain loudly
            slot.outcome = outcome
            if slot.checks_started is not None:
                self.check_seconds = [
                    *self.check_seconds[-(RECENT_CHECKS - 1) :],
                    round(time.monotonic() - slot.checks_started, 3),
                ]
            _, car = self._car(key)
            if outcome.passed:
                crash_point("checked")
                self._set(replace(car, checks=Checks.PASSED))
            else:
                failure = Failure(outcome.status.value, outcome.details())
                self._set(replace(car, checks=Checks.FAILED, failure=failure))
            log.info("checks_finished %s car=%s status=%s", self._ctx(), key, outcome.status)

    async def _cancel_checks(self, key: str) -> None:
        slot = self.slots.get(key)
        if slot is not None and slot.task is not None:
            task, slot.task = slot.task, None
            task.cancel()  # run_command kills the command's whole process group
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("checks_cancelled %s car=%s", self._ctx(), key)
        _, car = self._car(key)
        if car.checks is Checks.RUNNING:
            self._set(replace(car, checks=Checks.NONE))

    async def _discard(self, key: str, *, keep_branch: bool = False) -> None:
        """Stop the car's checks and drop its worktree (and, unless it is about to be pushed
        again, its integration branch)."""
        await self._cancel_checks(key)
        slot = self.slots.get(key)
        if slot is None:
            return
        if slot.built is not None:
            await self._git(self._workspace(self.config).remove, slot.built)
            if not keep_branch and slot.attempt is not None:
                await self._delete_branch(slot.attempt)
        slot.built = None
        slot.outcome = None

    async def _stop_all(self) -> None:
        for key in list(self.slots):
            slot = self.slots[key]
            if slot.task is not None:
                slot.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await slot.task
                slot.task = None
            if slot.built is not None:
                with contextlib.suppress(GitError, OSError):
                    await self._git(self._workspace(self.config).remove, slot.built)
                slot.built = None
        with contextlib.suppress(GitError, OSError):
            await self._git(self._workspace(self.config).remove_slots)

    async def _held(self, action: Advance) -> bool:
        """Ask the gate (freezes, freeze windows, a red base: `mergebot.gate`) right before base
        moves. Held: the planner gets the reason as its `hold` — the cars stay checked and the
        train goes on, but base stays — until a freeze or unfreeze is folded
        (`keys.control_signals`), the hold's `until` passes, or `freeze.recheck_seconds` did;
        then the gate is asked again (after a fetch: base may have moved meanwhile)."""
        if self.shadow:
            return False
        gate = Gatekeeper(self.runtime, self.repo, self.base, ensure=self._ensure)
        hold = await gate.hold(self.config, action.old)
        if hold is None:
            if self._gate_said is not None:
                log.info("base_released repo=%s base=%s sha=%s", self.repo, self.base,
                         action.old)  # fmt: skip
                await gate.clear_waiting()
            self._gate_hold = self._gate_said = None
            return False
        if hold.sentence() != self._gate_said:
            log.info("base_held repo=%s base=%s sha=%s kind=%s why=%s", self.repo, self.base,
                     action.old, hold.kind, hold.sentence())  # fmt: skip
            slug = ", ".join(m.slug for m in self._car(action.landing[0])[1].members)
            await gate.record_waiting(hold, action.old, slug)
        self._gate_hold = self._gate_said = hold.sentence()
        seconds = self.config.freeze.recheck_seconds
        if hold.until is not None:
            seconds = min(seconds, max((hold.until - self.runtime.clock()).total_seconds(), 0.05))
        self._gate_again = time.monotonic() + seconds
        return True

    async def _advance(self, action: Advance) -> None:
        landing = [self._car(k)[1] for k in action.landing]
        if self.shadow:
            self.base_tip = action.new
            self.contained |= {c.commit for c in landing if c.commit}
            return
        workspace = self._workspace(self.config)
        slots = [self.slots[c.key] for c in landing if c.key in self.slots]
        branches = [
            s.attempt.branch for s in slots if s.attempt and s.attempt.pushed and s.attempt.branch
        ]
        self._ensure()
        push = await self._git(workspace.update_base, self.base, action.old, action.new, branches)
        if push.status is PushStatus.OK:
            for slot in slots:  # their branches went with the same push
                if slot.attempt is not None:
                    slot.attempt = slot.attempt.model_copy(update={"pushed": False})
            crash_point("base_pushed")
            log.info(
                "base_advanced %s from=%s to=%s cars=%d",
                self._ctx(),
                action.old[:7],
                action.new[:7],
                len(landing),
            )
            self.base_tip = self._remote_tip = action.new
            self.contained |= {c.commit for c in landing if c.commit}
            return
        # Refused: did it land after all (an answer lost on the way back), or did base move?
        await self._fetch()
        if self.base_tip == action.old:
            head = landing[0]
            message = f"the remote refused to move {self.base}: {push.message}"
            self._set(replace(head, failure=Failure("push_rejected", {"message": message})))

    def _member_attempts(self, car: Car) -> list[tuple[QueueItem, Attempt]]:
        """Each member's record of the car's attempt (same commit, base and checks; only the
        first one owns the integration branch, so it is deleted once)."""
        slot = self.slots.get(car.key)
        attempt = slot.attempt if slot and slot.attempt else self._new_attempt(car, car.parent)
        checks = [c.to_dict() for c in slot.outcome.checks] if slot and slot.outcome else []
        batch = [m.slug for m in car.members] if len(car.members) > 1 else []
        out = []
        for index, member in enumerate(car.members):
            update: dict[str, Any] = {
                "item_id": member.item_id,
                "checks": checks or attempt.checks,
                "batch": batch,
            }
            if index:
                update["pushed"] = False
            out.append((self.items[member.item_id], attempt.model_copy(update=update)))
        return out

    async def _land_car(self, action: Land, result: DrainResult) -> None:
        _, car = self._car(action.key)
        if car.empty:
            cause = "already on base: nothing to merge"
        elif self.shadow:
            cause = f"shadow: would integrate {action.after[:7]}"
        else:
            cause = f"{self.base} fast-forwarded"
        for item, attempt in self._member_attempts(car):
            landed = attempt.model_copy(
                update={"base_sha": action.before, "main_after": action.after}
            )
            status = await self._land(item, landed, cause)
            result.outcomes.append((item.id, status))
        await self._discard(car.key, keep_branch=True)
        self.cars.pop(self._car(car.key)[0])
        self.slots.pop(car.key, None)

    async def _block_car(
        self, key: str, reason: str, details: dict[str, Any], result: DrainResult
    ) -> None:
        _, car = self._car(key)
        members = self._member_attempts(car)
        details = await self._with_flaky_history(details)
        await self._discard(key, keep_branch=True)
        for item, attempt in members:
            status = await self._block(item, attempt, reason, details)
            result.outcomes.append((item.id, status))
        self.cars.pop(self._car(key)[0])
        self.slots.pop(key, None)

    async def _with_flaky_history(self, details: dict[str, Any]) -> dict[str, Any]:
        """Each failed check named with how often it failed and then passed on one commit in
        the last 7 days, so people can tell a flaky check from a broken change."""
        checks = details.get("checks")
        if not isinstance(checks, list) or not checks:
            return details
        recent = await FlakyLog(self.runtime.redis, self.runtime.keys).recent(self.repo)
        if not recent:
            return details
        return {
            **details,
            "checks": [
                {**c, "flaky_recent": recent[str(c.get("name"))]}
                if isinstance(c, dict) and recent.get(str(c.get("name")))
                else c
                for c in checks
            ],
        }

    async def _take_out(self, action: TakeOut, result: DrainResult) -> None:
        item = self.items[action.item_id]
        await self._cancel_checks(action.key)
        moved = await self._move(
            item, action.to, action.cause, Status.IN_PROGRESS, reasons=list(action.reasons)
        )
        log.info("taken_out_of_train %s to=%s cause=%s", self._ctx(item), action.to, action.cause)
        self._ensure()
        await self.attempts.drop(self.repo, self.base, item.id)
        self.readiness.pop(item.id, None)
        result.outcomes.append((item.id, action.to.value if moved else "skipped"))

    async def _publish(self) -> None:
        """The train as `status`, the queue API and the dashboard show it (a view only)."""
        cars = []
        for position, car in enumerate(self.cars, start=1):
            slot = self.slots.get(car.key)
            cars.append(
                {
                    "position": position,
                    "key": car.key,
                    "members": [
                        {"slug": m.slug, "sha": m.sha, "item": m.item_id} for m in car.members
                    ],
                    "parent": car.parent,
                    "on_base": car.on_base,
                    "commit": car.commit,
                    "branch": slot.built.branch if slot and slot.built else None,
                    "checks": "failed" if car.failed else car.checks.value,
                    "generation": car.generation,
                    **(
                        {"bisection": {"batch": list(car.bisect.batch), "beside": car.beside}}
                        if car.bisect is not None
                        else {}
                    ),
                }
            )
        state = {
            "owner": self.owner,
            "window": self.window.size,
            "adaptive": self.window.adaptive,
            "max_depth": self.window.maximum,
            "hold": self.hold,
            "base_tip": self.base_tip,
            "cars": cars,
            "batch_wait_until": wait.isoformat() if (wait := self._batch_wait_until) else None,
            "updated_at": _now().isoformat(),
        }
        key = self.runtime.keys.train(self.repo, self.base)
        await self.runtime.redis.hset(
            key,
            mapping={"state": json.dumps(state), "check_seconds": json.dumps(self.check_seconds)},
        )

    async def _initial_window(self) -> Window:
        """The window a new holder starts with: `depth`, or the adaptive window last shown."""
        pipeline = self.server_repo_config.pipeline
        if not pipeline.adaptive:
            return Window(pipeline.depth, False, pipeline.max_depth)
        key = self.runtime.keys.train(self.repo, self.base)
        raw = cast(str | None, await self.runtime.redis.hget(key, "state"))
        size = pipeline.depth
        with contextlib.suppress(ValueError, TypeError, KeyError):
            size = int(json.loads(raw or "{}")["window"])
        raw_seconds = cast(str | None, await self.runtime.redis.hget(key, "check_seconds"))
        with contextlib.suppress(ValueError, TypeError):
            self.check_seconds = [float(s) for s in json.loads(raw_seconds or "[]")]
        return Window(min(max(size, 1), pipeline.max_depth), True, pipeline.max_depth)

    # -- outcomes (shared with recovery) -------------------------------------------------------
    async def _land(self, item: QueueItem, attempt: Attempt, cause: str) -> str:
        attempt = attempt.model_copy(update={"outcome": Outcome.LANDED, "decided_at": _now()})
        self._ensure()
        await self.attempts.put(self.repo, self.base, attempt)
        crash_point("landed_recorded")
        return await self._finish_landed(item, attempt, cause)

    async def _finish_landed(self, item: QueueItem, attempt: Attempt, cause: str) -> str:
        await self._emit(completed_event(item, attempt))
        crash_point("completed_emitted")
        await self._move(
            item,
            Status.INTEGRATED,
            cause,
            Status.IN_PROGRESS,
            integration=integration_fields(attempt),
        )
        crash_point("integrated")
        await self._cleanup(item, attempt)
        log.info(
            "integration_completed %s main_after=%s mode=%s",
            self._ctx(item),
            attempt.main_after,
            attempt.mode,
        )
        return Status.INTEGRATED.value

    async def _block(
        self, item: QueueItem, attempt: Attempt, reason: str, details: dict[str, Any]
    ) -> str:
        self._ensure()
        followup = attempt.followup_id or await self.attempts.allocate_followup(
            self.repo, item.slug, item.sha
        )
        attempt = attempt.model_copy(
            update={
                "outcome": Outcome.BLOCKED,
                "decided_at": _now(),
                "reason": reason,
                "details": details,
                "followup_id": followup,
            }
        )
        self._ensure()
        await self.attempts.put(self.repo, self.base, attempt)
        return await self._finish_blocked(item, attempt)

    async def _finish_blocked(self, item: QueueItem, attempt: Attempt) -> str:
        await self._emit(blocked_event(item, attempt))
        crash_point("blocked_emitted")
        summary = str(attempt.details.get("message") or attempt.details.get("diagnosis") or "")
        reasons = [f"{attempt.reason}: {summary}" if summary else str(attempt.reason)]
        await self._move(
            item,
            Status.BLOCKED,
            f"blocked: {attempt.reason}",
            Status.IN_PROGRESS,
            followup_id=attempt.followup_id,
            reasons=reasons,
            integration=integration_fields(attempt),
        )
        crash_point("blocked")
        await self._cleanup(item, attempt)
        log.info(
            "integration_blocked %s reason=%s followup=%s",
            self._ctx(item),
            attempt.reason,
            attempt.followup_id,
        )
        return Status.BLOCKED.value

    async def _delete_branch(self, attempt: Attempt) -> None:
        if attempt.pushed and attempt.branch and attempt.mode is Mode.LIVE:
            slug = self.items[attempt.item_id].slug if attempt.item_id in self.items else ""
            prefix = attempt.branch[: len(attempt.branch) - len(slug)] if slug else ""
            root = worktrees_root(self.runtime.settings.data_dir, self.repo)
            workspace = Workspace(self.mirror, root, prefix=prefix)
            self._ensure()
            await self._git(workspace.delete_branch, attempt.branch)

    async def _cleanup(self, item: QueueItem, attempt: Attempt) -> None:
        self.items.setdefault(item.id, item)
        await self._delete_branch(attempt)
        self._ensure()
        await self.attempts.drop(self.repo, self.base, item.id)
        crash_point("cleaned")

    # -- crash recovery ------------------------------------------------------------------------
    async def _recover(self, result: DrainResult) -> None:
        """Finish what a previous holder left: see the module docstring."""
        workspace = self._workspace(self.server_repo_config)
        await self._git(workspace.clean_stale)
        stuck = await self.queue.by_status(self.repo, self.base, Status.IN_PROGRESS)
        live = self.server_repo_config.mode is Mode.LIVE
        if stuck or live:
            try:
                await self._git(self.mirror.fetch)
            except GitError as exc:
                log.warning("recovery_fetch_failed %s error=%s", self._ctx(), exc)
                if stuck:
                    raise StopDrainError(f"fetch failed: {exc}") from None
        key = self.runtime.keys.train_record(self.repo, self.base)
        recorded = cast(str | None, await self.runtime.redis.get(key))
        self._recorded = recorded
        bisecting = {m.item_id for car in train_record.load(recorded, (i.id for i in stuck))
                     for m in car.members}  # fmt: skip
        for item in stuck:
            status = await self._recover_item(item, continues=item.id in bisecting)
            if status != Status.IN_PROGRESS.value:
                result.outcomes.append((item.id, status))
        left = await self.queue.by_status(self.repo, self.base, Status.IN_PROGRESS)
        self.cars = train_record.load(recorded, (i.id for i in left if i.id in bisecting))
        self.slots = {car.key: _Slot() for car in self.cars}
        if self.cars:
            log.info(
                "bisection_continued %s cars=%s",
                self._ctx(),
                " | ".join(",".join(m.slug for m in c.members) for c in self.cars),
            )
            await self._queued()  # are its members still ready? (signals were lost meanwhile)
            await self._recheck([m.item_id for car in self.cars for m in car.members])
        await self._drop_final_records()
        if live:
            for branch in await self._git(workspace.remote_integration_branches):
                self._ensure()
                log.info("stale_integration_branch_deleted %s branch=%s", self._ctx(), branch)
                await self._git(workspace.delete_branch, branch)

    async def _recover_item(self, item: QueueItem, *, continues: bool = False) -> str:
        """Finish the item from its record or from base; otherwise it goes back to the queue —
        or, `continues`, stays `in_progress` in the bisection continued from the train record."""
        record = await self.attempts.get(self.repo, self.base, item.id)
        log.info("recovering %s record=%s", self._ctx(item), record.outcome if record else None)
        if record is not None and record.outcome is Outcome.BLOCKED:
            return await self._finish_blocked(item, record)
        if record is not None and record.outcome is Outcome.LANDED:
            return await self._finish_landed(item, record, "integrated (recovered)")
        remote_base = f"refs/remotes/{REMOTE_NAME}/{self.base}"
        now = await self._git(self.mirror.remote_branch, self.base)
        commit = record.commit if record is not None else None
        on_base = bool(commit) and await self._git(self.mirror.is_ancestor, commit, remote_base)
        if not on_base and await self._git(self.mirror.is_ancestor, item.sha, remote_base):
            on_base, commit = True, now
        if on_base and now:
            landed = (record or Attempt(item_id=item.id)).model_copy(
                update={
                    "main_after": commit,
                    "base_sha": (record.base_sha if record else None) or now,
                }
            )
            return await self._land(item, landed, "integrated (found on base after a restart)")
        self._ensure()
        await self.attempts.drop(self.repo, self.base, item.id)
        if continues:
            return Status.IN_PROGRESS.value
        cause = "crash recovery: rebuilt from the latest base"
        moved = await self._move(item, Status.QUEUED, cause, Status.IN_PROGRESS)
        return moved.status.value if moved else "skipped"

    async def _drop_final_records(self) -> None:
        key = self.runtime.keys.attempts(self.repo, self.base)
        ids = cast(list[str], await self.runtime.redis.hkeys(key))
        if not ids:
            return
        items = await self.queue.get_many(self.repo, self.base, ids)
        for item_id in ids:
            found = items.get(item_id)
            if found is None or found.status in FINAL:
                self._ensure()
                await self.attempts.drop(self.repo, self.base, item_id)
