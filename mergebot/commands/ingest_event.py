"""`mergebot ingest-event`: store the canonical events of one GitHub Actions event.

For teams that host nothing: a workflow step runs this with the job's GITHUB_EVENT_NAME and
GITHUB_EVENT_PATH, and the same translation as the webhook appends the same events to the event
log at MERGEBOT_REDIS_URL. Envelope ids are `actions:<repo>:<GITHUB_RUN_ID>:<index>` — a re-run
of the run (a new GITHUB_RUN_ATTEMPT) is the same GitHub event and must not store it twice, so the
attempt is deliberately not part of the id — or a hash of the event when there is no run id.
A comment command is queued like a webhook's; when a forge is configured it is acted on at once.
With `--integrate` the integrator then runs once for the repo, under the repo's lease.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from mergebot.config import ConfigError, Settings
from mergebot.github.command_worker import consumer_name, drain
from mergebot.github.intake import perform
from mergebot.github.translate import translate
from mergebot.github.translated import TranslationError
from mergebot.runtime import Runtime, open_runtime
from mergebot.store.eventlog import EventConflictError

HELP = "store the canonical events of one GitHub Actions event (GITHUB_EVENT_NAME/_PATH)"

EXIT_BAD_INPUT = 1
EXIT_UNAVAILABLE = 3

RunOnce = Callable[[Runtime, str], Awaitable[object]]


class IngestError(Exception):
    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        self.code = code
        super().__init__(message)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event-name", help="the GitHub event name (default: $GITHUB_EVENT_NAME)")
    parser.add_argument(
        "--event-path", type=Path, help="the event payload file (default: $GITHUB_EVENT_PATH)"
    )
    parser.add_argument(
        "--integrate",
        action="store_true",
        help="then run the integrator once for the event's repo, under its lease",
    )


def id_prefix(env: Mapping[str, str], repo: str, event_name: str, raw: bytes) -> str:
    run_id = env.get("GITHUB_RUN_ID", "")
    if run_id.isdigit():
        return f"actions:{repo}:{run_id}"
    digest = hashlib.sha256(event_name.encode() + b"\n" + raw).hexdigest()
    return f"sha256:{digest[:40]}"


@dataclass
class IngestResult:
    event: str
    repo: str | None
    report: dict[str, Any] = field(default_factory=dict)


async def ingest(
    runtime: Runtime, event_name: str, raw: bytes, env: Mapping[str, str]
) -> IngestResult:
    """Translate and store one event; raises IngestError (nothing stored) on bad input."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise IngestError("the event file is not JSON; nothing was stored") from None
    config = runtime.server_config
    try:
        translation = translate(event_name, payload, lambda r: config.repo(r).base_branch)
    except TranslationError as exc:
        raise IngestError(f"{exc}; nothing was stored") from None
    result = IngestResult(event_name, translation.repo)
    if translation.ignored is not None or translation.repo is None:
        result.report = {"ignored": translation.ignored}
        return result
    prefix = id_prefix(env, translation.repo, event_name, raw)
    try:
        stored = await perform(runtime, translation, id_prefix=prefix)
    except EventConflictError as exc:
        raise IngestError(f"{exc}; the first version stands") from None
    except (RedisError, OSError) as exc:
        raise IngestError(
            f"the event log is unavailable ({type(exc).__name__}); nothing was stored",
            EXIT_UNAVAILABLE,
        ) from None
    result.report = stored.as_json()
    if translation.command is not None:
        if translation.repo is not None and runtime.forge_has_comments(translation.repo):
            outcomes = await drain(runtime, consumer_name("actions"), only_repo=translation.repo)
            result.report["command_outcomes"] = [str(o) for o in outcomes]
        else:
            result.report["note"] = "no forge configured here: a mergebot worker will act on it"
    return result


def _read_inputs(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, bytes]:
    name = args.event_name or env.get("GITHUB_EVENT_NAME", "")
    path = args.event_path or (
        Path(env["GITHUB_EVENT_PATH"]) if env.get("GITHUB_EVENT_PATH") else None
    )
    if not name:
        raise IngestError("no event name: set GITHUB_EVENT_NAME or pass --event-name")
    if path is None:
        raise IngestError("no event file: set GITHUB_EVENT_PATH or pass --event-path")
    try:
        return name, path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read the event file {path}: {exc.strerror}") from None


async def _main(args: argparse.Namespace, env: Mapping[str, str], integrate: RunOnce) -> int:
    name, raw = _read_inputs(args, env)
    settings = Settings()
    if not settings.redis_url:
        raise IngestError("MERGEBOT_REDIS_URL is not set: ingest-event appends to a shared log")
    async with open_runtime(settings) as runtime:
        result = await ingest(runtime, name, raw, env)
        print(json.dumps({"event": result.event, "repo": result.repo, **result.report}))
        if args.integrate and result.repo is not None:
            await integrate(runtime, result.repo)
    return 0


def run(args: argparse.Namespace, integrate: RunOnce) -> int:
    """`integrate` drains a repo once (`--integrate`): the composition root gives the
    integrator's `run_once`."""
    try:
        return asyncio.run(_main(args, os.environ, integrate))
    except IngestError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
