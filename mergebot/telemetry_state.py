"""The queue's metrics at scrape time, read from Redis (see `mergebot.telemetry`).

`read_state` asks each source in `SOURCES` for its samples of every known repo; a source is
`async (runtime, repo, context) -> list[Sample]`, so a new one (the train's window and cars, a
freeze) is one function added to the tuple and one row in `CATALOGUE` and `docs/metrics.md`.
`LogFold` keeps this process's place in each event-log partition and folds what is new into its
`OutcomeFold` before every scrape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from mergebot.cutover_facts import mode_decision
from mergebot.gate import HoldKind
from mergebot.gatekeeper import current_hold
from mergebot.integrator.view import train_view
from mergebot.queue import Status
from mergebot.readiness import CandidateStatus
from mergebot.runtime import Runtime
from mergebot.status import known_repos
from mergebot.store.lease import info_from_hash
from mergebot.store.notify import NotifyStore
from mergebot.store.projection import ProjectionStore
from mergebot.store.queue import QueueStore
from mergebot.telemetry import QUEUE_STATUSES, OutcomeFold, Sample


@dataclass(frozen=True)
class ScrapeContext:
    """What several sources need, read once per scrape."""

    dead_letters: dict[str, int]


Source = Callable[[Runtime, str, ScrapeContext], Awaitable[list[Sample]]]


async def queue_length(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    """Active queue items by status (the queue's sorted set: never the whole history), plus
    the candidates the projection finds not READY yet."""
    base = runtime.server_config.repo(repo).base_branch
    active = await QueueStore(runtime.redis, runtime.keys).active(repo, base)
    counts = dict.fromkeys(QUEUE_STATUSES, 0)
    for item in active:
        if item.status in (Status.QUEUED, Status.IN_PROGRESS, Status.BLOCKED):
            counts[item.status.value] += 1
    store = ProjectionStore(runtime.redis, runtime.keys)
    states = (await runtime.projection_cache.load(store, repo)).candidates
    ids = {item.id for item in active}
    counts["waiting"] = sum(
        1 for key, s in states.items() if s.status == CandidateStatus.WAITING and key not in ids
    )
    return [Sample("mergebot_queue_length", (repo, status), n) for status, n in counts.items()]


async def lease(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    base = runtime.server_config.repo(repo).base_branch
    key = runtime.keys.lease(repo, base)
    info = info_from_hash(cast(dict[str, str], await runtime.redis.hgetall(key)))
    takeovers = await runtime.redis.hget(runtime.keys.lease_history(key), "takeovers")
    return [
        Sample("mergebot_lease_holder", (repo, info.owner if info else ""), 1 if info else 0),
        Sample("mergebot_lease_takeovers", (repo,), float(cast(str | None, takeovers) or 0)),
    ]


async def train(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    """The train as status shows it: the window (fixed depth, or the adaptive one the lease
    holder published) and the cars in flight (none without a lease holder)."""
    config = runtime.server_config.repo(repo)
    base, pipeline = config.base_branch, config.pipeline
    key = runtime.keys.lease(repo, base)
    held = info_from_hash(cast(dict[str, str], await runtime.redis.hgetall(key))) is not None
    published = cast(dict[str, str], await runtime.redis.hgetall(runtime.keys.train(repo, base)))
    view = train_view(
        published,
        depth=pipeline.depth,
        max_depth=pipeline.max_depth,
        adaptive=pipeline.adaptive,
        held=held,
    )
    return [
        Sample("mergebot_train_window", (repo,), float(view["window"])),
        Sample("mergebot_train_cars_in_flight", (repo,), float(len(view["cars"]))),
    ]


async def dead_letters(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    return [Sample("mergebot_dead_letters", (repo,), context.dead_letters.get(repo, 0))]


async def cutover(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    decision, evidence = await mode_decision(runtime, repo)
    samples = [Sample("mergebot_cutover_held_back", (repo,), 1 if decision.held_back else 0)]
    if evidence is not None and evidence.parity is not None:
        samples.append(Sample("mergebot_cutover_parity", (repo,), evidence.parity))
    return samples


async def frozen(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    """Why base may not move now, one series per kind of hold (the gate's own answer)."""
    hold = await current_hold(runtime, repo, runtime.server_config.repo(repo))
    return [
        Sample("mergebot_queue_frozen", (repo, kind.value), 1 if hold and hold.kind is kind else 0)
        for kind in HoldKind
    ]


async def flaky_checks(runtime: Runtime, repo: str, context: ScrapeContext) -> list[Sample]:
    """Failed checks are not re-run yet, so none can be found flaky: 0, as documented."""
    return [Sample("mergebot_flaky_checks", (repo,), 0)]


SOURCES: tuple[Source, ...] = (
    queue_length,
    lease,
    train,
    dead_letters,
    cutover,
    frozen,
    flaky_checks,
)


async def read_state(runtime: Runtime) -> list[Sample]:
    """Every source's samples for every known repo, from the stored state as it is now."""
    letters = await NotifyStore(runtime.redis, runtime.keys).dead_letter_counts()
    context = ScrapeContext(dead_letters=letters)
    samples: list[Sample] = []
    for repo in await known_repos(runtime):
        for source in SOURCES:
            samples += await source(runtime, repo, context)
    return samples


@dataclass
class LogFold:
    """This process's fold of the event log: where it is in each partition, and the counters
    and histograms so far. Reading is incremental, so a scrape costs only the new entries."""

    fold: OutcomeFold = field(default_factory=OutcomeFold)
    _after: dict[int, str] = field(default_factory=dict)  # partition -> last entry folded

    async def catch_up(self, runtime: Runtime, *, batch: int = 500) -> None:
        for partition in runtime.keys.all_partitions():
            while True:
                entries, last = await runtime.eventlog.read_after(
                    partition, self._after.get(partition), count=batch
                )
                if last is None:
                    break
                for entry in entries:
                    self.fold.apply(entry.envelope)
                self._after[partition] = last
