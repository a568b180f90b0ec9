"""`mergebot status [--repo R] [--json]`: each repo's queue, what waits and why, who integrates."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mergebot.commands.support import CommandError, add_repo_option, in_runtime
from mergebot.render import in_words, shorten
from mergebot.runtime import Runtime
from mergebot.status import all_status, repo_status

HELP = "show each repo's queue, the candidates waiting and why, and the lease holder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_option(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="the status object (an array of them without --repo), as GET /api/repos/…/queue",
    )


async def _collect(runtime: Runtime, repo: str | None) -> list[dict[str, Any]]:
    if repo:
        return [await repo_status(runtime, repo)]
    return await all_status(runtime)


def render(status: dict[str, Any]) -> str:
    """The human view of one repo's status."""
    lease = status["lease"]
    holder = f"held by {lease['owner']} until {lease['expires_at']}" if lease else "free"
    lines = [
        f"{status['repo']} -> {status['base']} ({status['mode']}"
        f"{'' if status['managed'] else ', not managed'}); lease {holder}",
    ]
    frozen = status.get("frozen")
    if frozen:
        until = f", until {frozen['until']}" if frozen.get("until") else ""
        lines.append(f"  frozen: {frozen['reason']} (by {frozen['by']}{until}); base does not move")
    held = status.get("held")
    if held:
        lines.append(f"  waiting to land: {held['slug']}, checked on {str(held['base_sha'])[:7]}")
    cutover = status.get("cutover") or {}
    if cutover.get("held_back"):
        lines.append(f"  held in shadow (configured live): {cutover['reason']}")
    if not status["candidates"]:
        lines.append("  no candidates")
    for c in status["candidates"]:
        where = f"#{c['position']}" if c["position"] else c["status"]
        sha = (c["sha"] or "")[:7] or "-"
        priority = f" p={c['priority']}" if c.get("priority") else ""
        lines.append(f"  {where:<12} {c['slug']:<24} {c['branch'] or '-'} {sha}{priority}")
        for reason in c["reasons"]:  # one line each, however many files a conflict names
            lines.append(f"      - {shorten(in_words(str(reason)), 160)}")
        if c["followup_id"]:
            lines.append(f"      follow-up: {c['followup_id']}")
    ignored = status["ignored"]
    if ignored:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(ignored.items()))
        lines.append(f"  ignored events: {counts}")
    if status["refusals"]["recent"]:
        lines.append(f"  refused inputs (recent): {len(status['refusals']['recent'])}")
    lines.append(f"  dead notifications: {status['dead_letters']}")
    if status.get("poison_events"):
        lines.append(f"  unreadable event log entries (skipped, kept): {status['poison_events']}")
    if status.get("poison_changes"):
        lines.append(
            f"  unreadable queue change entries (skipped, kept): {status['poison_changes']}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        statuses = in_runtime(lambda runtime: _collect(runtime, args.repo), doing="read the queue")
    except CommandError as exc:
        return exc.exit()
    if args.json:
        print(json.dumps(statuses[0] if args.repo else statuses, indent=2))
    elif not statuses:
        print('no managed repos (add a [repos."owner/name"] table to mergebot.toml)')
    else:
        print("\n\n".join(render(s) for s in statuses))
    return 0
