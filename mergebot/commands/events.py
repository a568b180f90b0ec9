"""`mergebot events`: the stored envelopes, newest last, read straight from the event log."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from redis.exceptions import RedisError

from mergebot.bootstrap import open_runtime
from mergebot.config import ConfigError, load_settings
from mergebot.events import Envelope
from mergebot.ids import is_repo
from mergebot.store.embedded import EmbeddedRedisError
from mergebot.store.eventlog import LogEntry

HELP = "print the stored events (envelopes), newest last"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _repo(text: str) -> str:
    if not is_repo(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a repo name of the form owner/name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=_repo, help="only the events of this repo (owner/name)")
    parser.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="a JSON array of the envelopes")


_SUMMARY_FIELDS = ("slug", "branch", "sha", "reason", "review_round", "reviewer_session_id")


def summary(envelope: Envelope) -> str:
    """One line per event: when, what, which repo, its key fields and its id."""
    payload = envelope.payload
    parts = []
    for key in _SUMMARY_FIELDS:
        value = payload.get(key)
        if value is None:
            continue
        text = str(value)[:7] if key == "sha" else str(value)
        parts.append(f"{key}={text}")
    when = envelope.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{when}  {envelope.name.value:<21} {envelope.repo}  {' '.join(parts)}"
        f"  id={envelope.id} source={envelope.source}"
    )


async def _tail(args: argparse.Namespace) -> list[LogEntry]:
    async with open_runtime(load_settings()) as runtime:
        return await runtime.eventlog.tail(limit=args.limit, repo=args.repo)


def run(args: argparse.Namespace) -> int:
    try:
        entries = asyncio.run(_tail(args))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    except EmbeddedRedisError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"mergebot: cannot read the event log: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([e.envelope.model_dump(mode="json") for e in entries], indent=2))
    elif not entries:
        print("no events stored" + (f" for {args.repo}" if args.repo else ""), file=sys.stderr)
    else:
        for entry in entries:
            print(summary(entry.envelope))
    return 0
