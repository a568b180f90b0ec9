"""The readiness re-check just before a candidate is built (SPEC §4, §6 step 1).

The processor queued the item when the candidate became READY; events or pushes may have changed
that since. This asks the same rules (`mergebot.readiness.evaluate`) again, over the stored
projection and a freshly fetched mirror, and maps the answer to what the integrator does with the
queued item. It only reads the projection; the processor stays its only writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from mergebot.config import RepoConfig
from mergebot.git.facts import MirrorGitFacts
from mergebot.git.mirror import Mirror
from mergebot.integrator.planner import Decision, Verdict
from mergebot.queue import QueueItem
from mergebot.readiness import CandidateState, CandidateStatus, Rules, approvers, evaluate
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.projection import ProjectionStore


@dataclass(frozen=True)
class Recheck:
    decision: Decision
    reasons: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    followup_id: str | None = None

    def verdict(self) -> Verdict:
        """What the train planner reads of it."""
        return Verdict(self.decision, tuple(self.reasons), self.followup_id)


async def recheck(
    redis: RedisClient, keys: Keys, mirror: Mirror, config: RepoConfig, item: QueueItem
) -> Recheck:
    """Is `item` still READY? The mirror must have been fetched just before."""
    return (await recheck_many(redis, keys, mirror, config, [item]))[item.id]


async def recheck_many(
    redis: RedisClient,
    keys: Keys,
    mirror: Mirror,
    config: RepoConfig,
    items: Sequence[QueueItem],
) -> dict[str, Recheck]:
    """`recheck` of several items of one repo, over one load of the projection."""
    if not items:
        return {}
    state = await ProjectionStore(redis, keys).load_slugs(items[0].repo, [i.slug for i in items])
    rules = Rules.from_config(config)
    # evaluate asks git (subprocesses): keep it off the event loop.
    states = await asyncio.to_thread(
        evaluate, state.facts, rules, MirrorGitFacts(mirror), {i.slug for i in items}
    )
    out: dict[str, Recheck] = {}
    for item in items:
        found = states.get(item.id)
        if found is None:
            out[item.id] = Recheck(
                Decision.NOT_READY, ["the candidate is not known to the projection"]
            )
        else:
            out[item.id] = _answer(found, approvers(state.facts, item.slug, item.sha, rules))
    return out


def _answer(found: CandidateState, names: list[str]) -> Recheck:
    reasons = found.reason_texts()
    if found.git_unknown():
        return Recheck(Decision.UNKNOWN, reasons)
    match found.status:
        case CandidateStatus.READY:
            return Recheck(Decision.BUILD, [], names)
        case CandidateStatus.SUPERSEDED:
            return Recheck(Decision.SUPERSEDED, reasons)
        case CandidateStatus.INTEGRATED:
            return Recheck(Decision.INTEGRATED, reasons)
        case CandidateStatus.BLOCKED:
            return Recheck(Decision.BLOCKED, reasons, followup_id=found.followup_id)
        case CandidateStatus.WAITING | CandidateStatus.WITHDRAWN:
            return Recheck(Decision.NOT_READY, reasons)
