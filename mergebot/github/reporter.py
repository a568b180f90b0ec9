"""Show the queue on GitHub the way GitHub Actions shows a workflow: a `mergebot` check run on
each candidate's head commit that follows its queue status, a follow-up comment when a person must
act (blocked), and the pull request closed or left to GitHub once it landed.

The blocked comment *is* the follow-up todo (SPEC §7): the same template, context and limits as
the exported file (`mergebot followups`), so what the author reads on the pull request and what
the team tracks are one text. This service is the only writer of that comment.

It is a consumer of the queue's change stream (`keys.changes(repo)`, one entry per status change,
written atomically with the change), through its own consumer group, so it neither slows nor
couples the integrator: a change is acknowledged once its report is written, and a report GitHub
refused is retried a few times and then given up with a warning (the record is the event log;
the check run is a view of it). What to show is decided by `plan` (pure); `perform` does it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, cast

from mergebot.config import Mode
from mergebot.events import Envelope, EventName, IntegrationBlocked, IntegrationCompleted
from mergebot.followups import Followup, from_blocked
from mergebot.forge.base import CommentKind, Forge, Report, ReportState
from mergebot.forge.errors import ForgeError
from mergebot.forge.render import render_report, render_todo_comment
from mergebot.gatekeeper import current_hold
from mergebot.github.command_worker import forge_for
from mergebot.github.reconcile import github_repos
from mergebot.notify.view import LandedBy, Links, followup_context, landed_by, links_for
from mergebot.queue import QueueItem, Status
from mergebot.runtime import Runtime
from mergebot.services import keep_running, sleep_until_stopped
from mergebot.store.changes import ChangeReader
from mergebot.store.followups import FollowupStore
from mergebot.store.queue import QueueStore

log = logging.getLogger("mergebot.github.reporter")

GROUP = "github-reporter"
BLOCK_MS = 1_000
RECLAIM_IDLE_MS = 60_000
MAX_ATTEMPTS = 3
_STATE = {
    Status.QUEUED: ReportState.QUEUED,
    Status.IN_PROGRESS: ReportState.INTEGRATING,
    Status.INTEGRATED: ReportState.MERGED,
    Status.BLOCKED: ReportState.BLOCKED,
    Status.SUPERSEDED: ReportState.SUPERSEDED,
    Status.CANCELLED: ReportState.CANCELLED,
}


_WAITING = frozenset({Status.QUEUED, Status.IN_PROGRESS})


@dataclass(frozen=True)
class Facts:
    """What the log and the queue say about the candidate beyond the change itself."""

    position: int | None = None
    completed: IntegrationCompleted | None = None
    blocked: IntegrationBlocked | None = None
    followup: Followup | None = None  # the block's follow-up todo (stored, else from its event)
    previous_followup: Followup | None = None
    landed_by: LandedBy | None = None  # the landing that made the base a conflict was with
    # Why base may not move now (status `frozen`: kind, reason, by, until…), for a candidate
    # that waits or is being integrated: its check run says the queue is frozen.
    frozen: dict[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    report: Report
    comment: tuple[CommentKind, str] | None = None
    landed: tuple[str, str] | None = None  # (candidate sha, landed sha)
    notes: list[str] = field(default_factory=list)


def plan(item: QueueItem, facts: Facts, *, links: Links, templates_dir: str | None = None) -> Plan:
    """What to show for `item` now that it is in its current status (pure)."""
    state = _STATE[item.status]
    if state is ReportState.MERGED and shadow_outcome(item, facts.completed):
        state = ReportState.WOULD_MERGE
    common: dict[str, Any] = {"base": item.base, "templates_dir": templates_dir}
    integration = item.integration
    if state is ReportState.QUEUED:
        context: dict[str, Any] = {"position": facts.position, "frozen": facts.frozen}
    elif state is ReportState.INTEGRATING:
        context = {
            "integration_sha": integration.integration_sha or integration.sha,
            "checks": list(integration.checks),
            "car": integration.car,
            "stacked_on": integration.stacked_on,
            "frozen": facts.frozen,
        }
    elif state in (ReportState.MERGED, ReportState.WOULD_MERGE):
        merged = facts.completed.main_after if facts.completed else None
        merged = merged or integration.main_after or integration.integration_sha
        context = {"merged_sha": merged or item.sha}
    elif state is ReportState.BLOCKED:
        todo = followup_context(
            facts.followup or item_followup(item),
            links,
            previous=facts.previous_followup,
            landed_by=facts.landed_by,
        )
        context = {"followup": todo}
    elif state is ReportState.SUPERSEDED:
        context = {"newer_sha": None}
    else:
        context = {"reason": ", ".join(item.reasons) or None}
    report = render_report(item.repo, item.slug, item.sha, state, **common, **context)
    if state is ReportState.BLOCKED:
        body = render_todo_comment(context["followup"], templates_dir=templates_dir)
        return Plan(report, comment=(CommentKind.BLOCKED, body))
    if state is ReportState.MERGED:
        return Plan(report, landed=(item.sha, str(context["merged_sha"])))
    return Plan(report)  # a shadow decision leaves the pull request alone


def shadow_outcome(item: QueueItem, completed: IntegrationCompleted | None) -> bool:
    """Whether the integrator only decided to integrate (shadow mode: nothing was pushed), as
    recorded on the item's integration fields or on its `integration_completed` event."""
    if item.integration.mode == Mode.SHADOW:
        return True
    extra = (completed.model_extra if completed is not None else None) or {}
    return extra.get("mode") == Mode.SHADOW


def item_followup(item: QueueItem) -> Followup:
    """The follow-up of a blocked item whose `integration_blocked` is not in the log (yet): what
    the queue item itself recorded about the block."""
    integration = item.integration
    details = integration.details
    return Followup(
        id=item.followup_id or "none",
        repo=item.repo,
        slug=item.slug,
        branch=item.branch,
        sha=item.sha,
        base=item.base,
        reason=str(integration.reason or ", ".join(item.reasons) or "blocked"),
        details=details,
        blocked_at=item.updated_at,
        event_id="",
        created_at=item.updated_at,
        updated_at=item.updated_at,
    )


async def perform(forge: Forge, item: QueueItem, decided: Plan) -> None:
    await forge.report(decided.report)
    if decided.comment is not None:
        kind, body = decided.comment
        await forge.comment(item.repo, item.slug, kind, body)
    if decided.landed is not None:
        sha, merged = decided.landed
        await forge.landed(item.repo, item.slug, sha, merged)


async def facts_for(runtime: Runtime, item: QueueItem) -> Facts:
    position: int | None = None
    if item.status is Status.QUEUED:
        queued = await QueueStore(runtime.redis, runtime.keys).by_status(
            item.repo, item.base, Status.QUEUED
        )
        ids = [q.id for q in queued]
        position = ids.index(item.id) + 1 if item.id in ids else None
    completed: IntegrationCompleted | None = None
    blocked: IntegrationBlocked | None = None
    blocks: dict[str, Envelope] = {}  # the slug's blocks by follow-up id, in log order
    landings: dict[str, LandedBy] = {}  # every landing of the repo, by the base it made
    if item.status in (Status.INTEGRATED, Status.BLOCKED):
        async for entry in runtime.eventlog.replay(repo=item.repo):
            env = entry.envelope
            if landing := landed_by(env):
                landings[landing.main_after] = landing
            if env.payload.get("slug") != item.slug:
                continue
            if env.name is EventName.INTEGRATION_COMPLETED and env.payload.get("sha") == item.sha:
                completed = cast(IntegrationCompleted, env.event())
            elif env.name is EventName.INTEGRATION_BLOCKED:
                event = cast(IntegrationBlocked, env.event())
                blocks.setdefault(event.followup_id, env)
                if event.sha == item.sha:
                    blocked = event
    if item.status in (Status.QUEUED, Status.IN_PROGRESS):
        return Facts(position, frozen=await _frozen(runtime, item.repo))
    if blocked is None:
        return Facts(position, completed)
    chain = list(blocks)
    index = chain.index(blocked.followup_id)
    previous_id = chain[index - 1] if index > 0 else None
    followup = await _followup(runtime, blocks[blocked.followup_id], previous_id)
    previous = None
    if followup.previous_id in blocks:
        previous = await _followup(runtime, blocks[followup.previous_id], None)
    landing = landings.get(followup.info().base_sha)
    return Facts(position, completed, blocked, followup, previous, landing)


async def _frozen(runtime: Runtime, repo: str) -> dict[str, Any] | None:
    """Why base may not move now (what status shows as `frozen`), or None."""
    hold = await current_hold(runtime, repo, runtime.server_config.repo(repo))
    return hold.as_json() if hold is not None else None


async def _followup(runtime: Runtime, envelope: Envelope, previous_id: str | None) -> Followup:
    """The stored follow-up of a block (it carries claims), or, before the notifier has stored
    it, the one its `integration_blocked` asks for."""
    event = cast(IntegrationBlocked, envelope.event())
    built = from_blocked(envelope, previous_id=previous_id, now=event.blocked_at)
    stored = await FollowupStore(runtime.redis, runtime.keys).get(built.repo, built.id)
    return stored or built


async def handle(
    runtime: Runtime, forge: Forge, item: QueueItem, facts: Facts | None = None
) -> bool:
    """Show one change; True when done (or given up), False to try again later."""
    try:
        facts = facts or await facts_for(runtime, item)
        positions = _positions(runtime)
        if facts.position is not None:
            positions[item.id] = facts.position
        else:
            positions.pop(item.id, None)
        decided = plan(
            item,
            facts,
            links=links_for(runtime.settings, runtime.server_config, item.repo),
            templates_dir=runtime.server_config.templates_dir,
        )
        await perform(forge, item, decided)
    except ForgeError as exc:
        log.warning(
            "report_failed repo=%s slug=%s status=%s retryable=%s error=%s",
            item.repo,
            item.slug,
            item.status,
            exc.retryable,
            exc,
        )
        return not exc.retryable
    log.info(
        "reported repo=%s slug=%s sha=%s status=%s", item.repo, item.slug, item.sha[:7], item.status
    )
    return True


async def drain(runtime: Runtime, consumer: str, *, block_ms: int | None = None) -> int:
    """One pass over the change streams of the managed GitHub repos; the number handled."""
    repos = github_repos(runtime)
    if not repos:
        return 0
    reader = ChangeReader(runtime.redis, runtime.keys, GROUP, consumer)
    await reader.ensure(repos)
    # A dead consumer's unacknowledged changes first.
    claimed = await reader.reclaim(repos, min_idle_ms=RECLAIM_IDLE_MS, count=50)
    new = await reader.read(repos, count=50, block_ms=block_ms)
    handled = 0
    touched: set[tuple[str, str]] = set()
    for repo, change in claimed.changes + new.changes:
        item = change.item
        touched.add((item.repo, item.base))
        done = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            forge = await forge_for(runtime, item.repo)
            done = await handle(runtime, forge, item)
            if done:
                break
            await asyncio.sleep(0.5 * attempt)
        if not done:
            log.warning(
                "report_given_up repo=%s slug=%s status=%s", item.repo, item.slug, item.status
            )
        await reader.ack(repo, change)
        handled += 1
    for repo, base in sorted(touched):
        await refresh_positions(runtime, repo, base)
    for repo in repos:
        await refresh_frozen(runtime, repo, runtime.server_config.repo(repo).base_branch)
    return handled


def _positions(runtime: Runtime) -> dict[str, int]:
    """The queue position last shown for each queued item (in this process)."""
    return runtime.reported_positions


async def refresh_positions(runtime: Runtime, repo: str, base: str) -> None:
    """Items move up when one ahead leaves the queue: show their new position."""
    queued = await QueueStore(runtime.redis, runtime.keys).by_status(repo, base, Status.QUEUED)
    shown = _positions(runtime)
    frozen = await _frozen(runtime, repo) if queued else None
    for position, item in enumerate(queued, start=1):
        if shown.get(item.id) != position:
            forge = await forge_for(runtime, repo)
            await handle(runtime, forge, item, Facts(position=position, frozen=frozen))


async def refresh_frozen(runtime: Runtime, repo: str, base: str) -> None:
    """A freeze starts, changes or ends without any candidate's status changing: show it on the
    check run of every waiting and integrating candidate (once per change, in this process)."""
    frozen = await _frozen(runtime, repo)
    shown = runtime.reported_holds
    if shown.get(repo, None) == frozen:
        return
    store = QueueStore(runtime.redis, runtime.keys)
    active = [i for i in await store.active(repo, base) if i.status in _WAITING]
    if active:
        forge = await forge_for(runtime, repo)
        queued = [i.id for i in active if i.status is Status.QUEUED]
        for item in active:
            position = queued.index(item.id) + 1 if item.id in queued else None
            await handle(runtime, forge, item, Facts(position=position, frozen=frozen))
    shown[repo] = frozen


async def reporter_service(runtime: Runtime, stop: asyncio.Event) -> None:
    consumer = f"reporter-{id(runtime):x}"

    async def step() -> None:
        if not github_repos(runtime):
            await sleep_until_stopped(stop, 60)
            return
        await drain(runtime, consumer, block_ms=BLOCK_MS)

    await keep_running(stop, step, name="reporter")
