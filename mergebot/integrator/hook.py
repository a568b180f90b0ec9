"""The integrator's READY hook and background service: start a drain of a (repo, base) when the
processor queues work there, and sweep for unfinished work after restarts."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from mergebot.config import ConfigError
from mergebot.git.mirror import GitError
from mergebot.handoff import ReadyHook
from mergebot.integrator.runner import DrainResult, Integrator
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.services import sleep_until_stopped
from mergebot.store.lease import Lease
from mergebot.store.queue import QueueStore

log = logging.getLogger("mergebot.integrator")

SWEEP_SECONDS = 60.0
# A replica that found the lease held tries again this long after the lease ran out.
LEASE_WAKE_MARGIN = 0.2


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
                if result.status in ("busy", "lost") and await self.work_left(repo, base):
                    # The holder may be dead (a server killed with SIGKILL) or stalled: its lease
                    # runs out by itself, and nobody would look again before the next sweep.
                    # Look again the moment it has run out; a living holder has renewed it.
                    await self._until_lease_ends(repo, base)
                    self._again.add(key)
            except (RedisError, OSError, GitError, ConfigError) as exc:
                log.warning("integrator_failed repo=%s base=%s error=%s", repo, base, exc)
                return
            except Exception:  # a bug must be loud, and must not take the worker down
                log.exception("integrator_crashed repo=%s base=%s", repo, base)
                return
            if key not in self._again:
                return

    async def _until_lease_ends(self, repo: str, base: str) -> None:
        """Sleep until the current holder's lease runs out (its key's PTTL, Redis's clock): a
        stalled holder is then replaced within its lease's TTL, not at the next sweep."""
        lease = Lease(self.runtime.redis, self.runtime.keys, repo, base, "waiting")
        ttl = self.runtime.server_config.repo(repo).lease_ttl_seconds
        await asyncio.sleep(await lease.expires_in(default=ttl) + LEASE_WAKE_MARGIN)

    async def work_left(self, repo: str, base: str) -> bool:
        """Whether (repo, base) has queued or in-progress items."""
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
    for repo in sorted(set(runtime.server_config.repos) | known):
        if not runtime.server_config.managed(repo):
            continue
        base = runtime.server_config.repo(repo).base_branch
        if await hook.work_left(repo, base):
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
