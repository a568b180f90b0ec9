"""The I/O around `mergebot.gate`: gather what the gate needs, ask it, wait while it says hold.

The integrator asks `Gatekeeper.hold` at exactly one place: when its train would move base,
right before the compare-and-swap (a hold becomes the train planner's `hold` input; the runner
records it with `record_waiting` and asks again later). While the gate holds, the train keeps
its checked integration commits and waits; the runner asks again when a freeze or unfreeze is
folded (the processor publishes on `keys.control_signals`), when a hold's `until` passes, and
every `freeze.recheck_seconds` (a window closing, a fixing push to a red base). If base moved
meanwhile the planner rebuilds: the cars were checked on a tree that is not base any more.

Inputs, each from where it is recorded:
- freezes: the `queue_frozen` / `queue_unfrozen` facts of the stored projection (so a replay
  rebuilds them);
- windows: the repo's effective `freeze.windows`;
- the base's health (`clearance`): `clearance.required` asked of the forge for the base tip,
  and `clearance.commands` run in a worktree at the base tip when the tip is not a commit
  mergebot landed (its checks ran before it landed). Command results are kept per sha in
  `keys.gate`, so they run once per tip.

While a candidate waits, the hold is recorded under `waiting` in `keys.gate` (with the
candidate and the base sha), so status and the dashboard show who waits for what.

A red base closes the queue with one `queue_frozen` (kind `clearance`, the check and the sha;
its id is derived from the sha, so it is stored and announced once), and a green tip reopens it
with one `queue_unfrozen` of the same kind. Both go through the event log like a person's freeze,
so status, the dashboard and chat tell them the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import cast

from mergebot.checks import check_env, evaluate, run_commands
from mergebot.config import RepoConfig
from mergebot.events import Envelope, QueueFrozen, QueueUnfrozen, envelope_for
from mergebot.forge.base import CheckState
from mergebot.gate import (
    CLEARANCE,
    Clearance,
    ClearanceState,
    FreezeState,
    Hold,
    HoldKind,
    decide,
    freeze_state,
)
from mergebot.git.workspace import Workspace, worktrees_root
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.store.eventlog import EventConflictError
from mergebot.store.projection import ProjectionStore
from mergebot.store.queue import QueueStore

log = logging.getLogger("mergebot.gatekeeper")

SOURCE = "mergebot"
_LAST = "last"
_WAITING = "waiting"


def clearance_from_json(text: str | None) -> Clearance | None:
    if not text:
        return None
    data = json.loads(text)
    at = data.get("at")
    return Clearance(
        data["sha"],
        ClearanceState(data["state"]),
        data.get("check"),
        data.get("detail", ""),
        datetime.fromisoformat(at) if at else None,
    )


def clearance_json(result: Clearance) -> str:
    return json.dumps(
        {
            "sha": result.sha,
            "state": result.state.value,
            "check": result.check,
            "detail": result.detail,
            "at": result.at.isoformat() if result.at else None,
        }
    )


async def stored_freeze(runtime: Runtime, repo: str, base: str) -> FreezeState:
    """The freezes of (repo, base) as the processor last stored them."""
    facts = await ProjectionStore(runtime.redis, runtime.keys).freezes(repo)
    return freeze_state(facts, base)


async def last_clearance(runtime: Runtime, repo: str, base: str) -> Clearance | None:
    raw = await runtime.redis.hget(runtime.keys.gate(repo, base), _LAST)
    return clearance_from_json(cast(str | None, raw))


async def waiting(runtime: Runtime, repo: str, base: str) -> dict[str, object] | None:
    """The hold the train waits on right now (recorded by `record_waiting`), or None."""
    raw = await runtime.redis.hget(runtime.keys.gate(repo, base), _WAITING)
    return cast(dict[str, object], json.loads(raw)) if raw else None


async def current_hold(runtime: Runtime, repo: str, config: RepoConfig) -> Hold | None:
    """What status, the queue API and the dashboard show: the gate's answer now, with the
    newest clearance result recorded (the base tip the integrator looked at last)."""
    base = config.base_branch
    freeze = await stored_freeze(runtime, repo, base)
    clearance = await last_clearance(runtime, repo, base) if _has_clearance(config) else None
    return decide(freeze, config.freeze.parsed(), clearance, runtime.clock(), base=base)


def _has_clearance(config: RepoConfig) -> bool:
    return bool(config.clearance.required or config.clearance.commands)


class Gatekeeper:
    """Asks the gate for one (repo, base) and records what the train waits on."""

    def __init__(
        self,
        runtime: Runtime,
        repo: str,
        base: str,
        *,
        ensure: Callable[[], None] = lambda: None,
    ) -> None:
        self.runtime = runtime
        self.repo = repo
        self.base = base
        self.ensure = ensure  # raises when the caller lost its lease: called before writes
        self.mirror = runtime.mirror_for(repo)
        self._recorded = False

    # -- the base's health ---------------------------------------------------------------------
    async def _landed_by_us(self, sha: str) -> bool:
        queue = QueueStore(self.runtime.redis, self.runtime.keys)
        for item in await queue.items(self.repo, self.base):
            if item.status is Status.INTEGRATED and item.integration.main_after == sha:
                return True
        return False

    async def _required(self, config: RepoConfig, tip: str) -> Clearance | None:
        names = config.clearance.required
        if not names:
            return None
        forge = self.runtime.forge_for(self.repo)
        results = await forge.check_results(self.repo, tip)
        verdict = evaluate(names, results, 0.0, timeout=1.0, discovery_timeout=1.0)
        now = self.runtime.clock()
        failed = [r for r in results if r.name in names and r.state is CheckState.FAILURE]
        if failed:
            first = failed[0]
            return Clearance(tip, ClearanceState.RED, first.name, first.url or first.summary, now)
        unfinished = [r.name for r in verdict.reports if r.state.value != "passed"]
        if unfinished:
            return Clearance(tip, ClearanceState.PENDING, unfinished[0], "", now)
        return Clearance(tip, ClearanceState.GREEN, at=now)

    async def _commands(self, config: RepoConfig, tip: str) -> Clearance | None:
        commands = config.clearance.commands
        if not commands or await self._landed_by_us(tip):
            return None
        key = self.runtime.keys.gate(self.repo, self.base)
        known = clearance_from_json(cast(str | None, await self.runtime.redis.hget(key, tip)))
        if known is not None:
            return known
        root = worktrees_root(self.runtime.settings.data_dir, self.repo)
        workspace = Workspace(self.mirror, root, prefix=config.integration_branch_prefix)
        worktree = await asyncio.to_thread(workspace.checkout, tip, "clearance")
        try:
            env, secrets = check_env(os.environ, ())
            outcome = await run_commands(
                commands,
                worktree,
                deadline=time.monotonic() + config.clearance.timeout_seconds,
                env=env,
                secrets=secrets,
            )
        finally:
            await asyncio.to_thread(workspace.discard, worktree)
        now = self.runtime.clock()
        if outcome.passed:
            result = Clearance(tip, ClearanceState.GREEN, at=now)
        else:
            bad = next(c for c in outcome.checks if c.state.value != "passed")
            result = Clearance(tip, ClearanceState.RED, bad.name, bad.output_tail, now)
        self.ensure()
        await self.runtime.redis.hset(key, tip, clearance_json(result))
        log.info(
            "clearance_checked repo=%s base=%s sha=%s state=%s check=%s",
            self.repo, self.base, tip, result.state, result.check,
        )  # fmt: skip
        return result

    async def clearance(self, config: RepoConfig, tip: str) -> Clearance | None:
        """The base tip's health: red if any clearance check failed, pending while a required
        one has not finished, green otherwise; None when nothing is configured."""
        if not _has_clearance(config):
            return None
        results = [
            r for r in (await self._commands(config, tip), await self._required(config, tip)) if r
        ]
        result = next((r for r in results if r.state is ClearanceState.RED), None)
        result = result or next((r for r in results if r.state is ClearanceState.PENDING), None)
        result = result or Clearance(tip, ClearanceState.GREEN, at=self.runtime.clock())
        self.ensure()
        await self.runtime.redis.hset(
            self.runtime.keys.gate(self.repo, self.base), _LAST, clearance_json(result)
        )
        return result

    # -- the decision and its record -----------------------------------------------------------
    async def hold(self, config: RepoConfig, tip: str) -> Hold | None:
        freeze = await stored_freeze(self.runtime, self.repo, self.base)
        clearance = await self.clearance(config, tip)
        now = self.runtime.clock()
        hold = decide(freeze, config.freeze.parsed(), clearance, now, base=self.base)
        await self._record_clearance(freeze, clearance, hold, now)
        return hold

    async def _record_clearance(
        self, freeze: FreezeState, clearance: Clearance | None, hold: Hold | None, now: datetime
    ) -> None:
        """Close the queue once per red sha; reopen it once the base is green again."""
        if hold is not None and hold.kind is HoldKind.RED_BASE and clearance is not None:
            if freeze.red is None or freeze.red.sha != clearance.sha:
                event = QueueFrozen(
                    repo=self.repo, base=self.base, reason=hold.reason, by=SOURCE, at=now,
                    kind=CLEARANCE, sha=clearance.sha, check=clearance.check or "",
                    detail=clearance.detail[-2000:],
                )  # fmt: skip
                await self._emit(envelope_for(
                    event, source=SOURCE, event_id=f"clearance-closed:{self.base}:{clearance.sha}"
                ))  # fmt: skip
        elif (
            freeze.red is not None
            and clearance is not None
            and clearance.state is ClearanceState.GREEN
        ):
            event_id = f"clearance-opened:{self.base}:{freeze.red.sha}:{clearance.sha}"
            opened = QueueUnfrozen(
                repo=self.repo, base=self.base, by=SOURCE, at=now, kind=CLEARANCE,
                sha=clearance.sha,
            )  # fmt: skip
            await self._emit(envelope_for(opened, source=SOURCE, event_id=event_id))

    async def _emit(self, envelope: Envelope) -> None:
        """Store it once: the id names the sha, and the time in a repeat would differ."""
        if await self.runtime.eventlog.get(envelope.id, self.repo) is not None:
            return
        self.ensure()
        try:
            await self.runtime.eventlog.append(envelope)
        except EventConflictError:
            log.warning("clearance_event_exists repo=%s id=%s", self.repo, envelope.id)
        else:
            log.info("clearance_%s repo=%s id=%s", envelope.name, self.repo, envelope.id)

    async def record_waiting(self, hold: Hold, tip: str, slug: str) -> None:
        """Say (for status and the dashboard) that `slug`, checked on `tip`, waits on `hold`."""
        record = {"slug": slug, "base_sha": tip, "since": self.runtime.clock().isoformat()}
        self.ensure()
        await self.runtime.redis.hset(
            self.runtime.keys.gate(self.repo, self.base),
            _WAITING,
            json.dumps({**record, "hold": hold.as_json()}),
        )
        self._recorded = True

    async def clear_waiting(self) -> None:
        await self.runtime.redis.hdel(self.runtime.keys.gate(self.repo, self.base), _WAITING)
        self._recorded = False
