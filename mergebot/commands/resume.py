"""`mergebot resume <repo> <slug>`: re-queue the slug's current candidate (SPEC §7).

Appends a `resume_requested` event; the processor moves the slug's blocked item back to the queue
(the same path as the `/mergebot resume` PR comment), once: a block after the resume was acted on
needs a new resume. The current candidate is the newest head the log knows for the slug; for a
plain git remote (`forge = "git"`, where nobody announces pushes) the branch's tip is asked of
the remote first, and a head the log does not know yet is announced (`branch_pushed` and
`finalize_ready`, naming the head it replaces) before the resume, so the pushed fix is what gets
re-queued. When that head still needs an approval (approvals bound to a commit), the command
says who approved what and which sha needs one. Nothing blocked → the event is still stored,
and the command says it will change nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mergebot.commands.slug_event import (
    Outcome,
    add_target_arguments,
    build,
    operator,
    print_candidates,
)
from mergebot.commands.support import CommandError, run_job
from mergebot.config import Forge, load_settings
from mergebot.events import Envelope, EventError, EventName, envelope_for, parse_event
from mergebot.git.mirror import git_env
from mergebot.readiness import PREVIOUS_SHA, RepoFacts, Rules, fold
from mergebot.resume import ApprovalNeed, Head, approval_need, newest_head
from mergebot.runtime import Runtime, open_runtime
from mergebot.status import repo_status

HELP = "re-queue the slug's current candidate (fetches a plain remote's branch first)"
SOURCE = "cli"
LS_REMOTE_TIMEOUT = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--by", help="who asks (default: the OS user)")


@dataclass
class Resumed:
    outcome: Outcome
    head: Head | None = None
    moved_from: str | None = None  # the head the remote's tip replaced, when it moved
    need: ApprovalNeed | None = None
    notes: list[str] = field(default_factory=list)


def remote_tip(remote: str, branch: str) -> str | None:
    """The branch's tip on the remote (`git ls-remote`), or None when it has no such branch."""
    done = subprocess.run(
        ["git", "ls-remote", "--", remote, f"refs/heads/{branch}"],
        capture_output=True, text=True, timeout=LS_REMOTE_TIMEOUT, check=False,
        env=git_env(),
    )  # fmt: skip
    if done.returncode != 0:
        raise CommandError(f"cannot ask the remote for {branch}: {done.stderr.strip()[:300]}")
    first = done.stdout.split()
    return first[0] if first else None


async def _facts(runtime: Runtime, repo: str) -> RepoFacts:
    """The repo's facts straight from the log (the worker may not have folded the newest
    events yet: an approval given a second ago counts)."""
    facts = RepoFacts(repo=repo)
    async for entry in runtime.eventlog.replay(repo=repo):
        fold(facts, entry.envelope.event())
    return facts


def _announce(repo: str, slug: str, head: Head, tip: str, by: str) -> list[Envelope]:
    """`branch_pushed` and `finalize_ready` of the tip, the way a producer would send them."""
    now = datetime.now(UTC).isoformat()
    raws: list[dict[str, Any]] = [
        {"name": "branch_pushed", "repo": repo, "branch": head.branch, "sha": tip,
         "remote": "origin", "pushed_at": now, "pusher": by},
        {"name": "finalize_ready", "repo": repo, "slug": slug, "branch": head.branch, "sha": tip,
         "worker_session_id": f"cli:{by}", "orchestrator_session_id": "mergebot-resume",
         "ready_at": now, PREVIOUS_SHA: head.sha},
    ]  # fmt: skip
    return [envelope_for(parse_event(raw).event, source=SOURCE) for raw in raws]


async def _resume(resume: Envelope, by: str) -> Resumed:
    repo, slug = resume.repo, str(resume.payload["slug"])
    async with open_runtime(load_settings()) as runtime:
        config = runtime.server_config
        facts = await _facts(runtime, repo)
        head = newest_head(facts, slug)
        moved_from = None
        repo_config = config.repo(repo)
        if head is not None and config.managed(repo) and repo_config.forge is Forge.GIT:
            remote = repo_config.remote
            tip = await asyncio.to_thread(remote_tip, remote, head.branch) if remote else None
            if tip is not None and tip != head.sha:
                for envelope in _announce(repo, slug, head, tip, by):
                    await runtime.eventlog.append(envelope)
                    fold(facts, envelope.event())
                moved_from, head = head.sha, Head(head.branch, tip)
        result = await runtime.eventlog.append(resume)
        status = await repo_status(runtime, repo)
        need = None
        if head is not None:
            need = approval_need(facts, slug, head.sha, Rules.from_config(repo_config))
    mine = [c for c in status["candidates"] if c["slug"] == slug]
    outcome = Outcome(not result.duplicate, mine, status["base"])
    return Resumed(outcome, head, moved_from, need)


def run(args: argparse.Namespace) -> int:
    by = operator(args.by)
    try:
        envelope = build(
            EventName.RESUME_REQUESTED, args.repo, args.slug,
            requested_by=by, at=datetime.now(UTC).isoformat(),
        )  # fmt: skip
    except EventError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 2
    try:
        done = run_job(_resume(envelope, by), doing="write the event log")
    except CommandError as exc:
        return exc.exit()
    verb = "stored" if done.outcome.stored else "already stored"
    print(f"resume_requested for {args.repo} {args.slug} by {by}: {verb}")
    if done.moved_from is not None and done.head is not None:
        print(
            f"  {done.head.branch} moved on the remote to {done.head.sha[:7]} (the log knew "
            f"{done.moved_from[:7]}): announced it, so mergebot re-queues {done.head.sha[:7]}"
        )
    print_candidates(done.outcome, args.slug)
    if done.need is not None:
        print(f"  waiting for an approval: {done.need.sentence()}")
    elif done.moved_from is not None:
        print("  the new head is approved: the worker queues it when it processes the events")
    elif any(c["status"] == "blocked" for c in done.outcome.candidates):
        print("  the worker re-queues the blocked candidate when it processes the event")
    else:
        print(f"  note: nothing of {args.slug} is blocked, so the resume changes nothing")
    return 0
