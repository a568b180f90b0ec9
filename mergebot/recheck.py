"""The readiness re-check just before a candidate is built (SPEC §4, §6 step 1).

The processor queued the item when the candidate became READY; events or pushes may have changed
that since. This asks the same rules (`mergebot.readiness.evaluate`) again, over the stored
projection and a freshly fetched mirror, and maps the answer to what the integrator does with the
queued item. It only reads the projection; the processor stays its only writer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

import redis.asyncio as aioredis

from mergebot.config import RepoConfig
from mergebot.git.facts import MirrorGitFacts
from mergebot.git.mirror import Mirror
from mergebot.queue import QueueItem
from mergebot.readiness import CandidateStatus, Rules, approvers, evaluate
from mergebot.store.keys import Keys
from mergebot.store.projection import ProjectionStore


class Decision(StrEnum):
    BUILD = "build"
    SUPERSEDED = "superseded"
    INTEGRATED = "integrated"  # already on base: nothing to do
    NOT_READY = "not_ready"  # back to waiting (the item is cancelled; it returns when ready)
    BLOCKED = "blocked"  # an integration_blocked for it is in the log already
    UNKNOWN = "unknown"  # git could not be asked: leave it queued and try later


@dataclass(frozen=True)
class Recheck:
    decision: Decision
    reasons: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    followup_id: str | None = None


async def recheck(
    redis: aioredis.Redis, keys: Keys, mirror: Mirror, config: RepoConfig, item: QueueItem
) -> Recheck:
    """Is `item` still READY? The mirror must have been fetched just before."""
    state = await ProjectionStore(redis, keys).load_slugs(item.repo, [item.slug])
    rules = Rules.from_config(config)
    # evaluate asks git (subprocesses): keep it off the event loop.
    states = await asyncio.to_thread(
        evaluate, state.facts, rules, MirrorGitFacts(mirror), {item.slug}
    )
    found = states.get(item.id)
    if found is None:
        return Recheck(Decision.NOT_READY, ["the candidate is not known to the projection"])
    reasons = found.reason_texts()
    if found.git_unknown():
        return Recheck(Decision.UNKNOWN, reasons)
    match found.status:
        case CandidateStatus.READY:
            names = approvers(state.facts, item.slug, item.sha, rules)
            return Recheck(Decision.BUILD, [], names)
        case CandidateStatus.SUPERSEDED:
            return Recheck(Decision.SUPERSEDED, reasons)
        case CandidateStatus.INTEGRATED:
            return Recheck(Decision.INTEGRATED, reasons)
        case CandidateStatus.BLOCKED:
            return Recheck(Decision.BLOCKED, reasons, followup_id=found.followup_id)
        case CandidateStatus.WAITING | CandidateStatus.WITHDRAWN:
            return Recheck(Decision.NOT_READY, reasons)
