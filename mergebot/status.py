"""The status of a repo's queue (SPEC §9): one builder for `mergebot status --json` and
`GET /api/repos/<owner>/<repo>/queue`, so the two can never disagree.

Shape: `{"repo", "base", "mode", "cutover": {"requested_mode", "mode", "held_back", "reason",
"min_parity", "min_decisions", "accepted", "evidence"}, "frozen": null | {"kind", "reason", "by",
"since", "until", "sha", "check"}, "held": null | {"slug", "base_sha", "since", "hold"}, "managed",
"lease": null | {"owner", "expires_at"},
"candidates": [{"slug", "branch", "sha", "status", "ready_at", "position", "reasons",
"reason_codes", "followup_id", "updated_at", "priority", "pending_removal", "car", "stacked_on",
"eta_seconds"}], "dead_letters": n, "poison_events": n,
"poison_changes": n, "ignored": {code: n}, "train": {"window", "depth", "max_depth", "adaptive",
"hold", "check_seconds", "batch_wait_until", "cars": [{"position", "slugs", "shas", "stacked_on",
"parent", "commit", "branch", "checks", "attempt"}]},
"recent_ignored": […], "refusals": {"total": n, "recent": […]}}`.

Candidates come in this order: the active queue (queued with its 1-based position, in_progress,
blocked) in queue order (priority, then ready_at), each with its `car`, what the car is
`stacked_on` and an `eta_seconds` (`mergebot.integrator.view`); then candidates that are not
READY yet (status `waiting`, with what is missing); then the most recent finished items, newest
first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, cast

from mergebot.cutover_facts import mode_decision
from mergebot.gatekeeper import current_hold, waiting
from mergebot.integrator.view import placement, train_view
from mergebot.notify.view import LandedBy, landed_by
from mergebot.queue import FINAL, QueueItem, Status
from mergebot.readiness import CandidateState, CandidateStatus
from mergebot.runtime import PlacedCandidates, Runtime
from mergebot.store.changes import poison_change_count
from mergebot.store.flaky import FlakyLog
from mergebot.store.lease import info_from_hash
from mergebot.store.notify import dead_letter_count
from mergebot.store.projection import ProjectionStore
from mergebot.store.queue import QueueStore
from mergebot.store.refusals import RefusalLog

RECENT_FINISHED = 10
RECENT_NOTES = 10


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _item_entry(
    item: QueueItem, position: int | None, state: CandidateState | None
) -> dict[str, Any]:
    reasons = list(item.reasons)
    codes: list[str] = []
    if item.status == Status.QUEUED and state is not None and state.reasons:
        # Queued but no longer READY by the latest facts (e.g. git could not be asked).
        reasons = state.reason_texts()
        codes = [r.code.value for r in state.reasons]
    # Being integrated, but withdrawn, superseded or no longer approved by the latest facts: it
    # leaves the queue as soon as the integrator sees that (its checks are stopped).
    leaving = None
    if item.status == Status.IN_PROGRESS and state is not None and state.status in _LEAVING:
        leaving = "; ".join(state.reason_texts()) or state.status.value
    return {
        "slug": item.slug,
        "branch": item.branch,
        "sha": item.sha,
        "status": item.status.value,
        "ready_at": _iso(item.ready_at),
        "position": position,
        "reasons": reasons,
        "reason_codes": codes,
        "followup_id": item.followup_id,
        "updated_at": _iso(item.updated_at),
        "priority": item.priority,
        "pending_removal": leaving,
    }


_LEAVING = (CandidateStatus.WITHDRAWN, CandidateStatus.SUPERSEDED, CandidateStatus.WAITING)


def _waiting_entry(state: CandidateState) -> dict[str, Any]:
    return {
        "slug": state.slug,
        "branch": state.branch,
        "sha": state.sha,
        "status": "waiting",
        "ready_at": _iso(state.ready_at),
        "position": None,
        "reasons": state.reason_texts(),
        "reason_codes": [r.code.value for r in state.reasons],
        "followup_id": state.followup_id,
        "updated_at": None,
        "priority": state.priority,
        "pending_removal": None,
    }


async def repo_status(runtime: Runtime, repo: str) -> dict[str, Any]:
    status, placed = await _status(runtime, repo)
    status["candidates"] = list(placed.entries)
    return status


async def repo_status_json(runtime: Runtime, repo: str) -> bytes:
    """`repo_status` as UTF-8 JSON, exactly as `json.dumps` writes it: the candidate list (a
    thousand entries in a big repo, most of the work) is written once per queue, projection and
    train change and reused as bytes in between (no copy of it is encoded again per call)."""
    status, placed = await _status(runtime, repo)
    if placed.body is None:
        placed.body = json.dumps(placed.entries).encode()
    keys = list(status)
    at = keys.index("candidates")  # neither the first key nor the last
    before = json.dumps({key: status[key] for key in keys[:at]})
    after = json.dumps({key: status[key] for key in keys[at + 1 :]})
    return b"".join(
        (before[:-1].encode(), b', "candidates": ', placed.body, b", ", after[1:].encode())
    )


async def _status(runtime: Runtime, repo: str) -> tuple[dict[str, Any], PlacedCandidates]:
    """The status object with `candidates` left null, and the candidate list to put there. Its
    reads do not depend on each other: asked for together, they go to Redis as one pipeline
    (`Runtime.batched_reads`), and the answer waits for the slowest, not for the sum of a dozen
    round trips."""
    runtime = runtime.batched_reads()
    config = runtime.server_config.repo(repo)
    base = config.base_branch
    projections = ProjectionStore(runtime.redis, runtime.keys)
    refusals = RefusalLog(runtime.redis, runtime.keys)
    redis, keys = runtime.redis, runtime.keys
    go = asyncio.ensure_future
    candidates_ = go(_candidates(runtime, projections, repo, base))
    lease_ = go(cast(Awaitable[dict[str, str]], redis.hgetall(keys.lease(repo, base))))
    train_ = go(cast(Awaitable[dict[str, str]], redis.hgetall(keys.train(repo, base))))
    decision_ = go(mode_decision(runtime, repo))
    refused_ = go(refusals.recent(50))
    notes_ = go(projections.recent_notes(repo, RECENT_NOTES))
    hold_ = go(current_hold(runtime, repo, config))
    held_ = go(waiting(runtime, repo, base))
    flaky_ = go(flaky_checks(runtime, repo))
    dead_ = go(dead_letter_count(redis, keys, repo))
    poison_events_ = go(runtime.eventlog.poison_count())
    poison_changes_ = go(poison_change_count(redis, keys, repo))
    ignored_ = go(projections.counters(repo))
    refused_total_ = go(refusals.total())
    await asyncio.gather(
        candidates_, lease_, train_, decision_, refused_, notes_, hold_, held_, flaky_, dead_,
        poison_events_, poison_changes_, ignored_, refused_total_,
    )  # fmt: skip
    mark, entries, active = candidates_.result()
    lease = info_from_hash(lease_.result())
    pipeline = config.pipeline
    train = train_view(
        train_.result(),
        depth=pipeline.depth,
        max_depth=pipeline.max_depth,
        adaptive=pipeline.adaptive,
        held=lease is not None,
    )
    decision, evidence = decision_.result()

    # The train moves without the queue changing: each active item's place in it is added over
    # the cached entries, again only when the train (or the queue) changed.
    key = (mark, json.dumps(train, sort_keys=True)) if mark is not None else None
    placed = runtime.status_placed.get((repo, base))
    if placed is None or key is None or placed.mark != key:
        placed = PlacedCandidates(
            key,
            [
                {**entry, **placement(train, entry["slug"], entry["position"])}
                for entry in entries[:active]
            ]
            + entries[active:],
        )
        if key is not None:
            runtime.status_placed[repo, base] = placed

    recent_refusals = [r for r in refused_.result() if repo in r.repos][:RECENT_NOTES]
    hold = hold_.result()
    status = {
        "repo": repo,
        "base": base,
        # The mode it runs in: a repo asked to run live is held in shadow until its shadow
        # record meets its cutover bar (`cutover.held_back` says so, with why).
        "mode": decision.mode.value,
        "cutover": decision.to_dict(config.cutover, evidence),
        # Why base may not move now (a freeze, a freeze window, a red base), or null.
        "frozen": hold.as_json() if hold is not None else None,
        # The checked candidate waiting for base to open right now: {"slug", "base_sha",
        # "since", "hold"}, or null.
        "held": held_.result(),
        "managed": runtime.server_config.managed(repo),
        "lease": (
            {"owner": lease.owner, "expires_at": lease.expires_at.isoformat()} if lease else None
        ),
        "candidates": None,
        "train": train,
        "flaky_checks": flaky_.result(),
        "dead_letters": dead_.result(),
        # Event-log entries no consumer can read (all repos): skipped, kept, counted.
        "poison_events": poison_events_.result(),
        # This repo's queue change-stream entries no reader can parse: skipped, kept, counted.
        "poison_changes": poison_changes_.result(),
        "ignored": ignored_.result(),
        "recent_ignored": [n.model_dump(mode="json") for n in notes_.result()],
        "refusals": {
            "total": refused_total_.result(),
            "recent": [r.model_dump(mode="json") for r in recent_refusals],
        },
    }
    return status, placed


async def flaky_checks(runtime: Runtime, repo: str) -> list[dict[str, Any]]:
    """Checks that failed and then passed on the same commit: `{"check", "last_7_days",
    "total"}`, the flakiest of the last 7 days first."""
    log = FlakyLog(runtime.redis, runtime.keys)
    recent, totals = await asyncio.gather(log.recent(repo), log.totals(repo))
    return [
        {"check": name, "last_7_days": recent.get(name, 0), "total": total}
        for name, total in sorted(totals.items(), key=lambda kv: (-recent.get(kv[0], 0), kv[0]))
    ]


async def _candidates(
    runtime: Runtime, projections: ProjectionStore, repo: str, base: str
) -> tuple[tuple[str, str | None] | None, list[dict[str, Any]], int]:
    """The candidates of the status (active items in queue order, waiting ones, recently
    finished), how many are active items, and the mark they are cached under (None: not
    cached): built again only when the queue or the projection
    changed since the last call, so a repo with a thousand candidates costs two small reads
    instead of parsing every item."""
    queue = QueueStore(runtime.redis, runtime.keys)
    version, rev = await asyncio.gather(queue.version(repo, base), projections.rev(repo))
    held = runtime.status_candidates.get((repo, base))
    if held is not None and held[0] == (version, rev):
        return held[0], held[1], held[2]
    # Read after the version: a write in between makes the list newer than its mark, and the
    # next call builds it again (never the other way round). The states come with their rev.
    items, (states, rev) = await asyncio.gather(
        queue.items(repo, base), projections.candidates_with_rev(repo)
    )
    mark = (version, rev)
    candidates: list[dict[str, Any]] = []
    position = 0
    active_ids = {i.id for i in items if i.status not in FINAL}
    for item in (i for i in items if i.status not in FINAL):
        pos = None
        if item.status == Status.QUEUED:
            position += 1
            pos = position
        candidates.append(_item_entry(item, pos, states.get(item.id)))
    active = len(candidates)
    waiting_states = [
        state
        for key, state in states.items()
        if state.status == CandidateStatus.WAITING and key not in active_ids
    ]
    waiting_states.sort(key=lambda state: (state.slug, _iso(state.ready_at) or ""))
    candidates += [_waiting_entry(state) for state in waiting_states]
    finished = sorted(
        (i for i in items if i.status in FINAL), key=lambda i: i.updated_at, reverse=True
    )
    candidates += [_item_entry(i, None, None) for i in finished[:RECENT_FINISHED]]
    if mark[1] is not None:  # a projection stored without a rev is not cached either
        runtime.status_candidates[repo, base] = (mark, candidates, active)
        return mark, candidates, active
    return None, candidates, active


async def known_repos(runtime: Runtime) -> list[str]:
    """Managed repos, plus every repo with events when all repos are managed."""
    repos = set(runtime.server_config.repos)
    if runtime.server_config.manage_all_repos:
        repos |= {str(r) for r in await runtime.redis.smembers(runtime.keys.repos())}
    return sorted(repos)


async def is_known(runtime: Runtime, repo: str) -> bool:
    if runtime.server_config.managed(repo):
        return True
    return bool(await runtime.redis.sismember(runtime.keys.repos(), repo))


async def all_status(runtime: Runtime) -> list[dict[str, Any]]:
    return [await repo_status(runtime, repo) for repo in await known_repos(runtime)]


async def landing_of(runtime: Runtime, repo: str, base_sha: str) -> LandedBy | None:
    """The candidate whose landing made `base_sha` (what a conflict on that base was with), from
    the event log; None when mergebot did not make that commit or nothing is known of it."""
    if not base_sha:
        return None
    found: LandedBy | None = None
    async for entry in runtime.eventlog.replay(repo=repo):
        landing = landed_by(entry.envelope)
        if landing is not None and landing.main_after == base_sha:
            found = landing
    return found
