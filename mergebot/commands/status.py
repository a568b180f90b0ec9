"""`mergebot status [--repo R] [--json]`: each repo's queue, what waits and why, who integrates."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from redis.exceptions import RedisError

from mergebot.bootstrap import open_runtime
from mergebot.config import ConfigError, load_settings
from mergebot.ids import is_repo
from mergebot.status import all_status, repo_status
from mergebot.store.embedded import EmbeddedRedisError

HELP = "show each repo's queue, the candidates waiting and why, and the lease holder"


def _repo(text: str) -> str:
    if not is_repo(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a repo name of the form owner/name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=_repo, help="only this repo (owner/name)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="the status object (an array of them without --repo), as GET /api/repos/…/queue",
    )


async def _collect(repo: str | None) -> list[dict[str, Any]]:
    async with open_runtime(load_settings()) as runtime:
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
    if not status["candidates"]:
        lines.append("  no candidates")
    for c in status["candidates"]:
        where = f"#{c['position']}" if c["position"] else c["status"]
        sha = (c["sha"] or "")[:7] or "-"
        lines.append(f"  {where:<12} {c['slug']:<24} {c['branch'] or '-'} {sha}")
        for reason in c["reasons"]:
            lines.append(f"      - {reason}")
        if c["followup_id"]:
            lines.append(f"      follow-up: {c['followup_id']}")
    ignored = status["ignored"]
    if ignored:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(ignored.items()))
        lines.append(f"  ignored events: {counts}")
    if status["refusals"]["recent"]:
        lines.append(f"  refused inputs (recent): {len(status['refusals']['recent'])}")
    lines.append(f"  dead notifications: {status['dead_letters']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        statuses = asyncio.run(_collect(args.repo))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    except EmbeddedRedisError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"mergebot: cannot read the queue: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(statuses[0] if args.repo else statuses, indent=2))
    elif not statuses:
        print('no managed repos (add a [repos."owner/name"] table to mergebot.toml)')
    else:
        print("\n\n".join(render(s) for s in statuses))
    return 0
