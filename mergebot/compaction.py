"""Compaction: facts of candidates finished long ago leave the projection, the event log is
trimmed, and a snapshot keeps what a replay needs to start from.

History would otherwise grow without end: every slug ever finalized stays in the projection
(and in the processor's memory), and every event stays in the log. A *finished* slug is one
whose candidates are all final (integrated, superseded or withdrawn) and whose newest fact is
older than `retention_days` (default 30): nothing it says can matter to readiness any more.

A compaction of an event-log partition, by the holder of its partition lease (between two
batches, so nothing else writes the projections meanwhile):

1. `point` = the oldest entry some consumer group still needs (`EventLog.safe_trim_point`):
   every entry before it is folded into its repo's projection.
2. Per repo of the partition: the finished slugs are pruned from the projection (facts,
   candidate states and their finished queue items), and so are `branch_pushed` facts older than
   the cutoff whose sha is no kept candidate's. The remaining facts are the repo's *snapshot*,
   stored with `point`. (They may include entries after `point` too: folding a fact twice is a
   no-op, so snapshot + the entries from `point` on is the same set of facts.)
3. The partition's entries before `point` are trimmed.

`mergebot replay` then starts each repo from its snapshot and folds only the entries from its
`point` on, which gives exactly the projection compaction left (a test checks it against a full
replay pruned the same way). One limit, by design: an event about a compacted slug that arrives
after its compaction (a redelivery weeks late) starts that slug afresh.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pydantic import TypeAdapter

from mergebot.queue import FINAL
from mergebot.readiness import CandidateStatus, FreezeFact, PushFact, RepoFacts, SlugFacts
from mergebot.runtime import Runtime
from mergebot.store.keys import Keys
from mergebot.store.projection import ProjectionState, ProjectionStore, entry_order

log = logging.getLogger("mergebot.compaction")

FINISHED = frozenset(
    {CandidateStatus.INTEGRATED, CandidateStatus.SUPERSEDED, CandidateStatus.WITHDRAWN}
)
# How often the partition holder compacts on its own.
AUTO_EVERY = timedelta(days=1)
_SLUG_FACTS: TypeAdapter[dict[str, SlugFacts]] = TypeAdapter(dict[str, SlugFacts])
_PUSHES: TypeAdapter[dict[str, list[PushFact]]] = TypeAdapter(dict[str, list[PushFact]])
_PUSH_LIST: TypeAdapter[list[PushFact]] = TypeAdapter(list[PushFact])
_FREEZES: TypeAdapter[list[FreezeFact]] = TypeAdapter(list[FreezeFact])


# -- the pure part ------------------------------------------------------------------------------


def newest_fact(facts: SlugFacts) -> datetime | None:
    times: list[datetime] = []
    times += [a.at for a in facts.approvals] + [d.at for d in facts.dismissals]
    times += [f.ready_at for f in facts.finalizes] + [w.at for w in facts.withdrawals]
    times += [o.at for o in facts.outcomes] + [r.at for r in facts.resumes]
    times += [p.at for p in facts.priorities]
    return max(times) if times else None


def finished_before(state: ProjectionState, cutoff: datetime) -> set[str]:
    """The slugs whose candidates are all final and whose newest fact is older than `cutoff`."""
    statuses: dict[str, list[CandidateStatus]] = {}
    for candidate in state.candidates.values():
        statuses.setdefault(candidate.slug, []).append(candidate.status)
    done: set[str] = set()
    for slug, facts in state.facts.slugs.items():
        found = statuses.get(slug)
        newest = newest_fact(facts)
        if found and all(s in FINISHED for s in found) and newest and newest < cutoff:
            done.add(slug)
    return done


@dataclass
class Pruned:
    slugs: set[str] = field(default_factory=set)
    # branch -> the push facts kept (an empty list: the branch's facts are all gone)
    pushes: dict[str, list[PushFact]] = field(default_factory=dict)


def prune(state: ProjectionState, cutoff: datetime) -> Pruned:
    """Take the finished slugs, and push facts older than `cutoff` of shas no kept candidate
    has, out of `state` (in place); what was taken."""
    pruned = Pruned(finished_before(state, cutoff))
    for slug in pruned.slugs:
        del state.facts.slugs[slug]
    for key in [k for k, c in state.candidates.items() if c.slug in pruned.slugs]:
        del state.candidates[key]
    kept_shas = {c.sha for c in state.candidates.values() if c.sha}
    for branch, pushes in list(state.facts.pushes.items()):
        keep = [p for p in pushes if p.at >= cutoff or p.sha in kept_shas]
        if len(keep) != len(pushes):
            pruned.pushes[branch] = keep
            if keep:
                state.facts.pushes[branch] = keep
            else:
                del state.facts.pushes[branch]
    # The branch index is derived from the slugs: build it again without the pruned ones.
    state.facts = RepoFacts(
        repo=state.repo,
        slugs=state.facts.slugs,
        pushes=state.facts.pushes,
        freezes=state.facts.freezes,
    )
    return pruned


# -- snapshots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A repo's facts as of `point` (every log entry before it is in them)."""

    point: str
    facts: RepoFacts


async def load_snapshot(runtime: Runtime, keys: Keys, repo: str) -> Snapshot | None:
    redis = runtime.redis
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hmget(keys.snapshot(repo), ["point", "freezes"])
        pipe.hgetall(keys.snapshot_slugs(repo))
        pipe.hgetall(keys.snapshot_pushes(repo))
        (point, freezes), slugs, pushes = await pipe.execute()
    if point is None:
        return None
    slug_facts = _SLUG_FACTS.validate_json(_joined(cast(dict[str, str], slugs)))
    push_facts = _PUSHES.validate_json(_joined(cast(dict[str, str], pushes)))
    facts = RepoFacts(
        repo=repo,
        slugs=slug_facts,
        pushes=push_facts,
        freezes=_FREEZES.validate_json(freezes) if freezes else [],
    )
    return Snapshot(str(point), facts)


def _joined(fields: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}"


async def _store(runtime: Runtime, state: ProjectionState, pruned: Pruned, point: str) -> None:
    """The pruned projection (changed fields and a new rev, so readers and the processor read it
    again), its finished queue items gone, and the snapshot, in one MULTI."""
    keys, repo = runtime.keys, state.repo
    base = runtime.server_config.repo(repo).base_branch
    items = await runtime.redis.hgetall(keys.items(repo, base))
    gone_items = [
        item_id
        for item_id, text in cast(dict[str, str], items).items()
        if item_id.split(":", 1)[0] in pruned.slugs and _final(text)
    ]
    slugs = {name: f.model_dump_json() for name, f in state.facts.slugs.items()}
    pushes = {b: _PUSH_LIST.dump_json(p).decode() for b, p in state.facts.pushes.items()}
    async with runtime.redis.pipeline(transaction=True) as pipe:
        if pruned.slugs:
            pipe.hdel(keys.projection_slugs(repo), *pruned.slugs)
        for branch, kept in pruned.pushes.items():
            if kept:
                pipe.hset(keys.projection_pushes(repo), branch, _PUSH_LIST.dump_json(kept).decode())
            else:
                pipe.hdel(keys.projection_pushes(repo), branch)
        if gone_items:
            pipe.hdel(keys.items(repo, base), *gone_items)
            pipe.incr(keys.queue_version(repo, base))
        pipe.hset(keys.projection(repo), "rev", secrets.token_hex(8))
        pipe.delete(keys.snapshot(repo), keys.snapshot_slugs(repo), keys.snapshot_pushes(repo))
        snapshot: dict[str, Any] = {
            "point": point,
            "at": datetime.now(UTC).isoformat(),
            "freezes": _FREEZES.dump_json(state.facts.freezes).decode(),
        }
        pipe.hset(keys.snapshot(repo), mapping=cast(Any, snapshot))
        if slugs:
            pipe.hset(keys.snapshot_slugs(repo), mapping=cast(Any, slugs))
        if pushes:
            pipe.hset(keys.snapshot_pushes(repo), mapping=cast(Any, pushes))
        await pipe.execute()


def _final(text: str) -> bool:
    return str(json.loads(text).get("status")) in {s.value for s in FINAL}


# -- the pass ------------------------------------------------------------------------------------


@dataclass
class CompactionReport:
    partition: int
    point: str | None = None
    pruned: dict[str, int] = field(default_factory=dict)  # repo -> slugs pruned
    trimmed: int = 0


async def compact_partition(
    runtime: Runtime, partition: int, *, retention: timedelta, now: datetime | None = None
) -> CompactionReport:
    """Compact one partition (see the module docstring). Call it holding the partition's lease,
    between batches."""
    report = CompactionReport(partition)
    eventlog, keys = runtime.eventlog, runtime.keys
    cutoff = (now or datetime.now(UTC)) - retention
    safe = await eventlog.safe_trim_point(partition)
    if safe is None:  # nobody reads the partition yet: nothing is folded, nothing to compact
        return report
    # The log keeps the entries of the retention period (other readers look at recent ones).
    point = min(safe, f"{int(cutoff.timestamp() * 1000)}-0", key=entry_order)
    report.point = point
    known = cast(set[str], await runtime.redis.smembers(keys.repos()))
    store = ProjectionStore(runtime.redis, keys)
    for repo in sorted(r for r in known if keys.partition_of(r) == partition):
        state = await store.load(repo)
        pruned = prune(state, cutoff)
        await _store(runtime, state, pruned, point)
        report.pruned[repo] = len(pruned.slugs)
    report.trimmed = int(
        await runtime.redis.xtrim(keys.events(partition), minid=point, approximate=False)
    )
    await runtime.redis.hset(
        keys.compaction(partition),
        mapping={"at": (now or datetime.now(UTC)).isoformat(), "point": point,
                 "trimmed": report.trimmed},
    )  # fmt: skip
    await runtime.redis.hdel(keys.compaction(partition), "requested")
    log.info(
        "partition_compacted partition=%s point=%s trimmed=%d pruned=%d",
        partition, point, report.trimmed, sum(report.pruned.values()),
    )  # fmt: skip
    return report


async def compaction_due(
    runtime: Runtime, partition: int, now: datetime | None = None
) -> float | None:
    """The retention (days) to compact with now, or None: asked for by `mergebot compact` (its
    retention), or the last pass is older than AUTO_EVERY (the server's). A partition never
    compacted starts its clock instead: a server that runs for less than a day never compacts
    on its own."""
    key = runtime.keys.compaction(partition)
    at, requested = cast(list[str | None], await runtime.redis.hmget(key, ["at", "requested"]))
    when = now or datetime.now(UTC)
    if requested:
        return float(requested)
    if at is None:
        await runtime.redis.hsetnx(key, "at", when.isoformat())
        return None
    if when - datetime.fromisoformat(at) >= AUTO_EVERY:
        return runtime.settings.retention_days
    return None
