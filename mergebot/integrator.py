"""The integrator: drains one (repo, base) queue under the lease, one candidate at a time
(SPEC §5, §6, §11).

Per candidate: fetch; re-check readiness (not ready → superseded / cancelled / integrated, never
blocked); `queued → in_progress`; build the integration commit in a fresh worktree; record the
attempt (before anything is pushed); push the integration branch; run the checks; move base by a
compare-and-swap push (base moved → rebuild, at most `max_rebuilds` times); record the outcome,
emit `integration_completed` / `integration_blocked`, move the item, delete the integration branch.
`Lease.ensure()` runs before every write, and the work of a candidate is cancelled the moment the
lease is lost, so a holder that lost its lease stops before its next write — and even a holder
that does not know yet cannot move base from a state it did not see (the push is a CAS).

Crash recovery runs whenever the lease is taken: leftover worktrees are removed, each item left
`in_progress` is finished from its attempt record (blocked with the same follow-up, or integrated
when its commit reached base) or re-queued to be rebuilt, and stale integration branches are
deleted. Outcome events have deterministic ids, so finishing twice emits once.

`mode = "shadow"` does all of it locally: nothing is pushed, forge checks are "would wait for",
and the item ends `integrated` with `mode: "shadow"` / `would_integrate` recorded on it and on the
`integration_completed` event — consumers show it as "would integrate".

When the queue is empty the holder waits `grace_seconds` for late work (woken by the queue's
change stream, not by polling), writes a checkpoint, releases the lease and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from redis.exceptions import RedisError

from mergebot.attempts import (
    Attempt,
    AttemptStore,
    Outcome,
    blocked_event,
    completed_event,
    integration_fields,
)
from mergebot.checks import run_checks
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
from mergebot.handoff import ReadyHook
from mergebot.queue import FINAL, IntegrationRecord, InvalidTransitionError, QueueItem, Status
from mergebot.recheck import Decision, recheck
from mergebot.runtime import Runtime
from mergebot.sandbox import sandbox_for
from mergebot.services import sleep_until_stopped
from mergebot.store.eventlog import EventConflictError
from mergebot.store.lease import Lease, LeaseBusyError, LeaseLostError
from mergebot.store.queue import ItemNotFoundError, QueueStore

log = logging.getLogger("mergebot.integrator")

DEFAULT_MAX_REBUILDS = 3
SWEEP_SECONDS = 60.0
# A replica that found the lease held tries again this long after the lease ran out.
LEASE_WAKE_MARGIN = 0.2
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


def crash_point(step: str) -> None:
    """Kill this process right here when the test hook names `step` (see CRASH_ENV)."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def default_owner() -> str:
    return f"integrator:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


def settled_without_building(decision: Decision, why: str) -> tuple[Status, str] | None:
    """The final status a re-check alone gives a queued item, and the cause recorded with it;
    None when the item is built (or needs more than a status change)."""
    match decision:
        case Decision.SUPERSEDED:
            return Status.SUPERSEDED, why or "superseded"
        case Decision.INTEGRATED:
            return Status.INTEGRATED, "found already on base"
        case Decision.NOT_READY:  # not ready any more: never blocked (SPEC §6 step 1)
            return Status.CANCELLED, f"not ready any more: {why}"
        case _:
            return None


class StopDrainError(Exception):
    """The drain cannot go on for now (invalid repo config, git unavailable); items stay queued
    and the next wake-up or sweep tries again."""


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


class Integrator:
    """Drains the queue of one (repo, base)."""

    def __init__(
        self,
        runtime: Runtime,
        repo: str,
        base: str | None = None,
        *,
        owner: str | None = None,
        max_rebuilds: int = DEFAULT_MAX_REBUILDS,
        poll_seconds: float = 30.0,
    ) -> None:
        self.runtime = runtime
        self.repo = repo
        self.server_repo_config = runtime.server_config.repo(repo)
        self.base = base or self.server_repo_config.base_branch
        self.owner = owner or default_owner()
        self.max_rebuilds = max_rebuilds
        self.poll_seconds = poll_seconds
        self.queue = QueueStore(runtime.redis, runtime.keys)
        self.attempts = AttemptStore(runtime.redis, runtime.keys)
        self.mirror = runtime.mirror_for(repo)
        self.forge = runtime.forge_for(repo)
        self._lease: Lease | None = None

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
        """Take the lease, recover, integrate until the queue stays empty, release."""
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
            except StopDrainError as exc:  # raised by recovery (work items stop inside _hold)
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
        loop = asyncio.get_running_loop()
        grace_until: float | None = None
        while True:
            mark = await self._changes_mark()
            item = await self.queue.next_queued(self.repo, self.base)
            if item is None:
                if grace_until is None:
                    grace_until = loop.time() + self.server_repo_config.grace_seconds
                left = grace_until - loop.time()
                if left <= 0:
                    break
                await self._wait_for_change(mark, left)
                continue
            grace_until = None
            try:
                status = await self._guarded(lease, self._process(item))
            except StopDrainError as exc:
                result.status = "stopped"
                result.message = str(exc)
                log.warning("integrator_paused %s why=%s", self._ctx(), exc)
                break
            result.outcomes.append((item.id, status))
        lease.ensure()
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
            lost.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lost
        if task.cancelled():
            raise LeaseLostError(f"lease of {self.repo} ({self.base}) lost during work")
        return task.result()

    async def _changes_mark(self) -> str:
        rows = await self.runtime.redis.xrevrange(self.runtime.keys.changes(self.repo), count=1)
        return str(rows[0][0]) if rows else "0-0"

    async def _wait_for_change(self, mark: str, seconds: float) -> None:
        """Block until the queue's change stream has an entry after `mark` (enqueues, resumes
        and every other status change are written there atomically) or `seconds` pass."""
        stream = self.runtime.keys.changes(self.repo)
        await self.runtime.redis.xread({stream: mark}, count=1, block=max(1, int(seconds * 1000)))

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

    # -- one candidate -------------------------------------------------------------------------
    async def _config(self, item: QueueItem) -> RepoConfig:
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
        return await gated(self.runtime, self.repo, operator_pinned(config, server, self.base))

    async def _process(self, item: QueueItem) -> str:
        try:
            await self._git(self.mirror.fetch)
        except GitError as exc:
            raise StopDrainError(f"fetch failed: {exc}") from None
        config = await self._config(item)
        check = await recheck(self.runtime.redis, self.runtime.keys, self.mirror, config, item)
        why = "; ".join(check.reasons)
        settled = settled_without_building(check.decision, why)
        if settled is not None:
            status, cause = settled
            await self._move(item, status, cause, Status.QUEUED, reasons=check.reasons)
            return status.value
        if check.decision is Decision.UNKNOWN:
            raise StopDrainError(f"git could not be asked about {item.slug}: {why}")
        if check.decision is Decision.BLOCKED:
            # Its integration_blocked is in the log already (another holder's, or a replay).
            moved = await self._move(
                item, Status.IN_PROGRESS, "integration recorded", Status.QUEUED
            )
            if moved is not None:
                await self._move(
                    moved,
                    Status.BLOCKED,
                    "integration recorded",
                    Status.IN_PROGRESS,
                    followup_id=check.followup_id,
                    reasons=check.reasons,
                )
            return Status.BLOCKED.value
        started = await self._move(
            item,
            Status.IN_PROGRESS,
            f"integration started by {self.owner}",
            Status.QUEUED,
            reasons=[],
            integration=IntegrationRecord(owner=self.owner, mode=config.mode.value),
        )
        if started is None:
            return "skipped"
        crash_point("picked")
        log.info(
            "integration_started %s method=%s mode=%s",
            self._ctx(item),
            config.merge_method,
            config.mode,
        )
        return await self._integrate(started, config, check.approvers)

    async def _integrate(self, item: QueueItem, config: RepoConfig, approvers: list[str]) -> str:
        workspace = self._workspace(config)
        shadow = config.mode is Mode.SHADOW
        candidate = Candidate(item.slug, item.branch, item.sha, tuple(approvers))
        base_record = Attempt(item_id=item.id, mode=config.mode, method=config.merge_method)
        attempt = base_record
        for number in range(1, self.max_rebuilds + 2):
            if number > 1:
                await self._git(workspace.fetch)
            try:
                built = await self._git(workspace.build, candidate, self.base, config.merge_method)
            except GitError as exc:
                attempt = base_record.model_copy(update={"attempt": number})
                return await self._block(item, attempt, "merge_conflict", {"message": str(exc)})
            if isinstance(built, AlreadyOnBase):
                attempt = base_record.model_copy(
                    update={
                        "attempt": number,
                        "base_sha": built.base_sha,
                        "main_after": built.base_sha,
                    }
                )
                return await self._land(item, attempt, "already on base: nothing to merge")
            if isinstance(built, Conflict):
                attempt = base_record.model_copy(
                    update={"attempt": number, "base_sha": built.base_sha}
                )
                details = {
                    "files": list(built.files),
                    "message": built.message,
                    "base_sha": built.base_sha,
                }
                return await self._block(item, attempt, "merge_conflict", details)
            try:
                attempt = base_record.model_copy(
                    update={
                        "attempt": number,
                        "base_sha": built.base_sha,
                        "commit": built.commit,
                        "branch": built.branch,
                        "pushed": not shadow,
                    }
                )
                decided = await self._try(item, config, workspace, built, attempt)
            finally:
                await self._git(workspace.remove, built)
            if decided is not None:
                return decided
            log.info("base_moved_rebuilding %s attempt=%d", self._ctx(item), number)
        message = (
            f"{self.base} moved {self.max_rebuilds + 1} times while the candidate was being "
            f"checked; gave up after {self.max_rebuilds} rebuilds"
        )
        return await self._block(item, attempt, "push_rejected", {"message": message})

    async def _try(
        self,
        item: QueueItem,
        config: RepoConfig,
        workspace: Workspace,
        built: Integration,
        attempt: Attempt,
    ) -> str | None:
        """One build's life: record, push, check, CAS. None: base moved, rebuild."""
        shadow = config.mode is Mode.SHADOW
        self._ensure()
        await self.attempts.put(self.repo, self.base, attempt)
        crash_point("built")
        if not shadow:
            self._ensure()
            pushed = await self._git(workspace.push_branch, built)
            if pushed.status is not PushStatus.OK:
                message = f"could not push {built.branch}: {pushed.message}"
                return await self._block(item, attempt, "push_rejected", {"message": message})
            crash_point("branch_pushed")
        outcome = await run_checks(
            config.checks,
            worktree=built.worktree,
            forge=self.forge,
            repo=self.repo,
            sha=built.commit,
            prefix=config.integration_branch_prefix,
            redis=self.runtime.redis,
            signal_channel=self.runtime.keys.check_signals(self.repo),
            shadow=shadow,
            extra_secret_names=_secret_names(config),
            poll_seconds=self.poll_seconds,
            sandbox=sandbox_for(self.runtime.settings),
            on_check=lambda name, kind: self._running(attempt, name, kind),
        )
        attempt = attempt.model_copy(update={"checks": [c.to_dict() for c in outcome.checks]})
        if not outcome.passed:
            return await self._block(item, attempt, outcome.status.value, outcome.details())
        crash_point("checked")
        landed = attempt.model_copy(update={"main_after": built.commit})
        if shadow:
            return await self._land(item, landed, f"shadow: would integrate {built.commit[:7]}")
        # The gate (freezes, windows, a red base): a held candidate stays checked and waits.
        gatekeeper = Gatekeeper(self.runtime, self.repo, self.base, ensure=self._ensure)
        if not await gatekeeper.wait_until_open(config, built.base_sha, item.slug):
            return None  # base moved while it waited: rebuild on top of it
        self._ensure()
        push = await self._git(workspace.update_base, self.base, built.base_sha, built.commit)
        if push.status is PushStatus.OK:
            crash_point("base_pushed")
            return await self._land(item, landed, f"{self.base} fast-forwarded")
        # Refused: did it land after all (an answer lost on the way back), or did base move?
        await self._git(workspace.fetch)
        now = await self._git(workspace.base_sha, self.base)
        remote_base = f"refs/remotes/{REMOTE_NAME}/{self.base}"
        if now and await self._git(self.mirror.is_ancestor, built.commit, remote_base):
            return await self._land(item, landed, f"{self.base} fast-forwarded")
        if now is None or now == built.base_sha:
            message = f"the remote refused to move {self.base}: {push.message}"
            return await self._block(item, attempt, "push_rejected", {"message": message})
        return None  # base moved on: rebuild on top of it

    async def _running(self, attempt: Attempt, name: str, kind: str) -> None:
        """Record which check runs now, and since when (shown on the dashboard)."""
        running = {"name": name, "kind": kind, "started_at": _now().isoformat()}
        await self.attempts.put(
            self.repo, self.base, attempt.model_copy(update={"running": running})
        )

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

    async def _cleanup(self, item: QueueItem, attempt: Attempt) -> None:
        if attempt.pushed and attempt.branch and attempt.mode is Mode.LIVE:
            root = worktrees_root(self.runtime.settings.data_dir, self.repo)
            prefix = attempt.branch[: len(attempt.branch) - len(item.slug)]
            workspace = Workspace(self.mirror, root, prefix=prefix)
            self._ensure()
            await self._git(workspace.delete_branch, attempt.branch)
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
        for item in stuck:
            status = await self._recover_item(item)
            result.outcomes.append((item.id, status))
        await self._drop_final_records()
        if live:
            for branch in await self._git(workspace.remote_integration_branches):
                self._ensure()
                log.info("stale_integration_branch_deleted %s branch=%s", self._ctx(), branch)
                await self._git(workspace.delete_branch, branch)

    async def _recover_item(self, item: QueueItem) -> str:
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


def _secret_names(config: RepoConfig) -> list[str]:
    """Environment variables the notify sinks read secrets from (hidden from check commands)."""
    return config.secret_env_names()


# -- the READY hook and the service --------------------------------------------------------------


class IntegratorHook(ReadyHook):
    """The processor's READY hook: start a drain of (repo, base) at once, unless one is running
    in this process (then it is told to look again when it would stop)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()

    async def candidate_ready(self, repo: str, base: str) -> None:
        key = (repo, base)
        task = self._tasks.get(key)
        if task is not None and not task.done():
            self._again.add(key)
            return
        self._tasks[key] = asyncio.create_task(self._run(repo, base), name=f"integrate:{repo}")

    async def _run(self, repo: str, base: str) -> None:
        key = (repo, base)
        while True:
            self._again.discard(key)
            try:
                result = await Integrator(self.runtime, repo, base).drain()
                if result.status == "busy" and await self._wait_for_holder(repo, base):
                    self._again.add(key)
            except (RedisError, OSError, GitError, ConfigError) as exc:
                log.warning("integrator_failed repo=%s base=%s error=%s", repo, base, exc)
                return
            except Exception:  # a bug must be loud, and must not take the worker down
                log.exception("integrator_crashed repo=%s base=%s", repo, base)
                return
            if key not in self._again:
                return

    async def _wait_for_holder(self, repo: str, base: str) -> bool:
        """Another replica holds the lease: sleep until it runs out (a live holder renews it,
        a stalled or dead one does not), then say whether work is still waiting, so a stalled
        holder is replaced within its lease's TTL instead of at the next sweep."""
        lease = Lease(self.runtime.redis, self.runtime.keys, repo, base, "waiting")
        ttl = self.runtime.server_config.repo(repo).lease_ttl_seconds
        await asyncio.sleep(await lease.expires_in(default=ttl) + LEASE_WAKE_MARGIN)
        active = await QueueStore(self.runtime.redis, self.runtime.keys).active(repo, base)
        return any(i.status in (Status.QUEUED, Status.IN_PROGRESS) for i in active)

    async def idle(self) -> None:
        """Wait until no drain of this hook runs (tests, shutdown)."""
        while running := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.wait(running)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


async def sweep(runtime: Runtime, hook: IntegratorHook) -> None:
    """Start a drain for every managed repo with unfinished work (after a restart, or when the
    holder of another replica died): the fallback, not the path events take."""
    known = {str(r) for r in await runtime.redis.smembers(runtime.keys.repos())}
    queue = QueueStore(runtime.redis, runtime.keys)
    for repo in sorted(set(runtime.server_config.repos) | known):
        if not runtime.server_config.managed(repo):
            continue
        base = runtime.server_config.repo(repo).base_branch
        active = await queue.active(repo, base)
        if any(i.status in (Status.QUEUED, Status.IN_PROGRESS) for i in active):
            await hook.candidate_ready(repo, base)


async def integrator_service(runtime: Runtime, stop: asyncio.Event) -> None:
    """Register the READY hook, then sweep at start and every SWEEP_SECONDS."""
    hook = IntegratorHook(runtime)
    runtime.ready_hook = hook
    try:
        while not stop.is_set():
            try:
                await sweep(runtime, hook)
            except (RedisError, OSError, ConfigError) as exc:
                log.warning("integrator_sweep_failed error=%s", exc)
            await sleep_until_stopped(stop, SWEEP_SECONDS)
    finally:
        if runtime.ready_hook is hook:
            runtime.ready_hook = None
        await hook.close()


async def run_once(runtime: Runtime, repo: str) -> DrainResult:
    """Drain `repo`'s queue once under its lease (`mergebot ingest-event --integrate`)."""
    return await Integrator(runtime, repo).drain()
