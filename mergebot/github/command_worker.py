"""The command worker: acts on queued `/mergebot` comment commands (SPEC §7).

Kept off the webhook's request path because acting needs the forge (the commenter's permission,
a reply comment), which may be slow or down; the webhook only stores the command durably. Here a
command is: looked up in the event log (the pull request's head), decided by a pure `plan`, then
performed — events appended under ids derived from the comment id, and at most one reply comment
(the forge edits a reply of the same kind in place). Both effects are idempotent, so an entry
retried after a crash acts once; it is acknowledged only after its effect is stored.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from pydantic import ValidationError
from redis.exceptions import RedisError

from mergebot.events import (
    CandidateWithdrawn,
    FinalizeReady,
    PrioritySet,
    QueueFrozen,
    QueueUnfrozen,
    ResumeRequested,
    WithdrawReason,
    parse_priority,
)
from mergebot.forge.base import CommentKind, Forge, Permission
from mergebot.github.commands import Command, CommandRequest
from mergebot.github.intake import envelopes
from mergebot.github.replies import render
from mergebot.github.summary import SlugSummary, summarize
from mergebot.github.translated import ORCHESTRATOR, Draft, PendingApproval, make
from mergebot.queue import Status, item_id
from mergebot.runtime import Runtime
from mergebot.services import keep_running
from mergebot.store.commands import CommandInbox, InboxEntry
from mergebot.store.eventlog import EventConflictError
from mergebot.store.queue import QueueStore

log = logging.getLogger("mergebot.github.commands")

MAX_ATTEMPTS = 5
RETRY_IDLE_MS = 30_000
BLOCK_MS = 1_000
_EVENT = "issue_comment"


class ForgeUnavailableError(RuntimeError):
    """No forge client can be built for the repo (nothing configured, or the forge refused)."""


async def forge_for(runtime: Runtime, repo: str) -> Forge:
    """The repo's forge: `runtime.forge_for(repo)` when the runtime has it, else the factory a
    component registered as `runtime.forge_override` (tests set a fake there)."""
    if not runtime.forge_has_comments(repo):
        raise ForgeUnavailableError("no forge is configured to act on comment commands")
    forge: Any = runtime.forge_for(repo)
    if inspect.isawaitable(forge):
        forge = await forge
    return cast(Forge, forge)


class Outcome(StrEnum):
    ACTED = "acted"
    REFUSED = "refused"
    REPLIED = "replied"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Reply:
    kind: CommentKind
    template: str
    context: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    outcome: Outcome
    events: tuple[Draft, ...] = ()
    reply: Reply | None = None
    notes: list[str] = field(default_factory=list)


_GONE = frozenset({WithdrawReason.CLOSED, WithdrawReason.DRAFT, WithdrawReason.BASE_CHANGED})


def _refused(context: dict[str, Any], reason: str, **facts: str) -> Plan:
    """A polite refusal comment; nothing else happens."""
    refusal = {**context, "reason": reason, **facts}
    return Plan(Outcome.REFUSED, reply=Reply(CommentKind.REFUSED, "refused", refusal))


def plan(
    request: CommandRequest, permission: Permission, summary: SlugSummary, *, base: str
) -> Plan:
    """What a command does, decided from plain values (no I/O)."""
    context: dict[str, Any] = {
        "author": request.author,
        "line": request.line,
        "repo": request.repo,
        "slug": request.slug,
        "base": base,
    }
    if not permission.can_command:
        return _refused(context, "permission", permission=permission.value)
    when = request.created_at.isoformat()
    # Every event a command makes names the pull request and the comment it came from.
    common = {"repo": request.repo, "slug": request.slug, "comment_id": request.comment_id}
    priority: PrioritySet | None = None
    if request.command in (Command.PRIORITY, Command.MERGE) and (
        request.argument or request.command is Command.PRIORITY
    ):
        try:
            value = parse_priority(request.argument)
        except ValueError:
            return _refused(context, "bad_priority", value=request.argument)
        priority = cast(
            PrioritySet,
            make(PrioritySet, _EVENT, priority=value, set_by=request.author, at=when, **common),
        )
    match request.command:
        case Command.HELP:
            return Plan(Outcome.REPLIED, reply=Reply(CommentKind.HELP, "help", context))
        case Command.STATUS:
            status = {**context, "summary": summary}
            return Plan(Outcome.REPLIED, reply=Reply(CommentKind.STATUS, "status", status))
        case Command.MERGE:
            if summary.sha is None or summary.branch is None:
                return _refused(context, "no_candidate")
            if summary.withdrawn in _GONE:
                return _refused(context, "withdrawn", withdrawn=summary.withdrawn)
            approval = PendingApproval(
                repo=request.repo,
                slug=request.slug,
                sha=summary.sha,
                reviewer=request.author,
                approval_id=f"comment-{request.comment_id}",
                approved_at=when,
                extra={"comment_id": request.comment_id, "via": "command"},
            ).validated()
            ready = make(
                FinalizeReady,
                _EVENT,
                branch=summary.branch,
                sha=summary.sha,
                worker_session_id=request.author,
                orchestrator_session_id=ORCHESTRATOR,
                ready_at=when,
                base=base,
                via="command",
                **common,
            )
            if priority is not None:
                return Plan(Outcome.ACTED, events=(approval, ready, priority))
            return Plan(Outcome.ACTED, events=(approval, ready))
        case Command.PRIORITY:
            assert priority is not None
            return Plan(Outcome.ACTED, events=(priority,))
        case Command.FREEZE | Command.UNFREEZE:
            return _plan_freeze(request, permission, context, base=base, when=when)
        case Command.RESUME:
            resume = make(ResumeRequested, _EVENT, requested_by=request.author, at=when, **common)
            if summary.sha is not None and not summary.head_approvers:
                # The newest head (a push after the block) has no approval of its own yet:
                # say so, or the resume seems to do nothing.
                waiting = {**context, "summary": summary}
                reply = Reply(CommentKind.STATUS, "resume_needs_approval", waiting)
                return Plan(Outcome.ACTED, events=(resume,), reply=reply)
            return Plan(Outcome.ACTED, events=(resume,))
        case Command.CANCEL:
            cancel = make(
                CandidateWithdrawn,
                _EVENT,
                reason=WithdrawReason.CANCELLED,
                at=when,
                requested_by=request.author,
                **common,
            )
            return Plan(Outcome.ACTED, events=(cancel,))


def _plan_freeze(
    request: CommandRequest,
    permission: Permission,
    context: dict[str, Any],
    *,
    base: str,
    when: str,
) -> Plan:
    """`/mergebot freeze <reason>` and `/mergebot unfreeze`: the whole queue of `base`, so
    maintain or admin only; a freeze says why."""
    if not permission.can_freeze:
        return _refused(context, "freeze_permission", permission=permission.value)
    common = {"repo": request.repo, "base": base, "by": request.author, "at": when}
    origin = {"comment_id": request.comment_id, "slug": request.slug}
    if request.command is Command.UNFREEZE:
        return Plan(Outcome.ACTED, events=(make(QueueUnfrozen, _EVENT, **common, **origin),))
    if not request.argument.strip():
        return _refused(context, "freeze_reason")
    frozen = make(QueueFrozen, _EVENT, reason=request.argument, **common, **origin)
    return Plan(Outcome.ACTED, events=(frozen,))


async def _summary(runtime: Runtime, request: CommandRequest, base: str) -> SlugSummary:
    as_of = request.created_at if request.command is Command.MERGE else None
    entries = [entry.envelope async for entry in runtime.eventlog.replay(repo=request.repo)]
    summary = summarize(request.slug, entries, as_of=as_of)
    if request.command is Command.STATUS:
        await _add_queue_state(runtime, request.repo, base, summary)
    return summary


async def _add_queue_state(runtime: Runtime, repo: str, base: str, summary: SlugSummary) -> None:
    """Where the head stands in the queue, when it is there (the queue is the live truth)."""
    if summary.sha is None or summary.branch is None:
        return
    store = QueueStore(runtime.redis, runtime.keys)
    item = await store.get(repo, base, item_id(summary.slug, summary.branch, summary.sha))
    if item is None:
        return
    summary.queue_status = item.status.value
    if item.status is Status.QUEUED:
        queued = [i.id for i in await store.active(repo, base) if i.status is Status.QUEUED]
        summary.queue_position = queued.index(item.id) + 1 if item.id in queued else None
    if item.followup_id:
        summary.followup_id = item.followup_id


def event_id_prefix(request: CommandRequest) -> str:
    return f"github-comment-{request.comment_id}"


async def execute(runtime: Runtime, request: CommandRequest) -> Outcome:
    """Perform one command. Raises on forge or Redis failures (the caller retries)."""
    if not runtime.server_config.managed(request.repo):
        log.info("command_skipped repo=%s reason=repo_not_managed", request.repo)
        return Outcome.SKIPPED
    config = runtime.server_config
    forge = await forge_for(runtime, request.repo)
    permission = await forge.permission(request.repo, request.author)
    base = config.repo(request.repo).base_branch
    summary = await _summary(runtime, request, base)
    decision = plan(request, permission, summary, base=base)
    if decision.events:
        batch = await envelopes(runtime, decision.events, id_prefix=event_id_prefix(request))
        try:
            await runtime.eventlog.append_many(batch)
        except EventConflictError:
            # Stored by an earlier try whose view of the log differed: the first version stands.
            log.warning("command_already_stored comment=%s", request.comment_id)
    if decision.reply is not None:
        body = render(
            decision.reply.template, templates_dir=config.templates_dir, **decision.reply.context
        )
        await forge.comment(request.repo, request.slug, decision.reply.kind, body)
    log.info(
        "command_done repo=%s slug=%s command=%s author=%s permission=%s outcome=%s",
        request.repo,
        request.slug,
        request.command,
        request.author,
        permission,
        decision.outcome,
    )
    return decision.outcome


def _request(entry: InboxEntry) -> CommandRequest | None:
    try:
        return CommandRequest.model_validate_json(entry.record)
    except ValidationError:
        return None


async def handle(runtime: Runtime, inbox: CommandInbox, entry: InboxEntry) -> Outcome | None:
    """One inbox entry: act, then acknowledge; on failure leave it pending for a later retry
    (at most MAX_ATTEMPTS, then it is dropped with an ERROR log naming the comment)."""
    attempts = await inbox.attempt(entry.entry_id)
    request = _request(entry)
    if request is None:
        log.error("command_unreadable entry=%s key=%s", entry.entry_id, entry.key)
        await inbox.done(entry.entry_id)
        return None
    failure: Exception | None = None
    try:
        outcome = await execute(runtime, request)
    except RedisError:
        raise  # storage is down: the service loop backs off; the entry stays pending
    except Exception as exc:  # a forge failure of any kind (network errors are OSErrors too)
        failure = exc
    if failure is None:
        await inbox.done(entry.entry_id)
        return outcome
    error = f"{type(failure).__name__}: {str(failure)[:200]}"
    if attempts < MAX_ATTEMPTS:
        log.warning(
            "command_failed repo=%s comment=%s attempt=%s error=%s",
            request.repo,
            request.comment_id,
            attempts,
            error,
        )
        return None
    log.error(
        "command_abandoned repo=%s comment=%s attempts=%s error=%s",
        request.repo,
        request.comment_id,
        attempts,
        error,
    )
    await inbox.done(entry.entry_id)
    return None


def _repo_of(entry: InboxEntry) -> str:
    return entry.key.split("#", 1)[0]


async def drain(
    runtime: Runtime,
    consumer: str,
    *,
    block_ms: int | None = None,
    only_repo: str | None = None,
    retry_idle_ms: int = RETRY_IDLE_MS,
) -> list[Outcome | None]:
    """One pass: retry entries idle for `retry_idle_ms`, then read new ones (waiting up to
    `block_ms`). With `only_repo`, other repos' entries are left for another consumer."""
    inbox = CommandInbox(runtime.redis, runtime.keys)
    await inbox.ensure_group()
    entries = await inbox.reclaim(consumer, min_idle_ms=retry_idle_ms)
    entries += await inbox.read(consumer, block_ms=block_ms)
    outcomes: list[Outcome | None] = []
    for entry in entries:
        if only_repo is not None and _repo_of(entry) != only_repo:
            continue
        outcomes.append(await handle(runtime, inbox, entry))
    return outcomes


def consumer_name(role: str = "worker") -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


async def command_service(runtime: Runtime, stop: asyncio.Event) -> None:
    """Background service: act on commands until `stop` is set."""
    consumer = consumer_name()
    await keep_running(
        stop, lambda: drain(runtime, consumer, block_ms=BLOCK_MS), name="command_worker"
    )
