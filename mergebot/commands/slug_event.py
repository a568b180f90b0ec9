"""What `mergebot resume` and `mergebot cancel` share: one operator event about one slug.

Both write straight to the event log through `open_runtime`, like `events` and `status`, rather
than through a running server's `POST /events`: they are operator commands run where mergebot's
Redis is reachable (the embedded one of the data dir is borrowed, not stopped), they must also
work while the web tier is down, and they report the slug's queue state, which needs Redis anyway.
The running worker's processor then acts on the event like on any other.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mergebot.commands.support import CommandError, run_job
from mergebot.config import load_settings
from mergebot.events import Envelope, EventError, EventName, envelope_for, parse_event
from mergebot.runtime import open_runtime
from mergebot.status import repo_status

SOURCE = "cli"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", help="the repo, owner/name")
    parser.add_argument("slug", help="the unit of work in the repo (e.g. pr-12)")


def operator(explicit: str | None) -> str:
    """Who asks: `--by`, else the OS user (a name shown in the event and notifications)."""
    if explicit is not None:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli"


def build(name: EventName, repo: str, slug: str, **fields: Any) -> Envelope:
    """The envelope of the event, validated by the event models; EventError on bad input."""
    raw = {"name": name.value, "repo": repo, "slug": slug, **fields}
    parsed = parse_event(raw)
    return envelope_for(parsed.event, source=SOURCE)


@dataclass(frozen=True)
class Outcome:
    stored: bool  # False: the same event was already in the log
    candidates: list[dict[str, Any]]  # the slug's entries of `mergebot status`, before processing
    base: str


async def _store(envelope: Envelope) -> Outcome:
    async with open_runtime(load_settings()) as runtime:
        result = await runtime.eventlog.append(envelope)
        status = await repo_status(runtime, envelope.repo)
    slug = envelope.payload["slug"]
    mine = [c for c in status["candidates"] if c["slug"] == slug]
    return Outcome(not result.duplicate, mine, status["base"])


def describe(candidate: dict[str, Any]) -> str:
    sha = (candidate["sha"] or "")[:7] or "-"
    where = f"queued #{candidate['position']}" if candidate["position"] else candidate["status"]
    text = f"{where}: {candidate['branch'] or '-'} at {sha}"
    if candidate["followup_id"]:
        text += f" (follow-up {candidate['followup_id']})"
    return text


def submit(name: EventName, repo: str, slug: str, **fields: Any) -> tuple[int, Outcome | None]:
    """Validate, store and look up the slug. (exit code, outcome); messages go to stderr."""
    try:
        envelope = build(name, repo, slug, at=datetime.now(UTC).isoformat(), **fields)
    except EventError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 2, None
    try:
        outcome = run_job(_store(envelope), doing="write the event log")
    except CommandError as exc:
        return exc.exit(), None
    return 0, outcome


def print_candidates(outcome: Outcome, slug: str) -> None:
    if not outcome.candidates:
        print(f"  {slug} has no candidate in the queue of {outcome.base}")
    for candidate in outcome.candidates:
        print(f"  {slug} is {describe(candidate)}")
