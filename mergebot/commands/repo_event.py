"""What `mergebot freeze` and `mergebot unfreeze` share: one operator event about a repo's base
(not a subcommand itself). Like `resume` and `cancel` they write to the event log directly, so
they work while the web tier is down; the processor folds the event and the integrator obeys
it before it moves base next."""

from __future__ import annotations

import sys
from typing import Any

from mergebot.commands.support import CommandError, run_job
from mergebot.config import ConfigError, load_server_config, load_settings
from mergebot.events import Envelope, EventError, EventName, envelope_for, parse_event
from mergebot.runtime import open_runtime
from mergebot.status import repo_status

SOURCE = "cli"


async def _store(envelope: Envelope) -> tuple[bool, dict[str, Any]]:
    async with open_runtime(load_settings()) as runtime:
        result = await runtime.eventlog.append(envelope)
        status = await repo_status(runtime, envelope.repo)
    return not result.duplicate, status


def base_of(repo: str) -> str:
    """The repo's base branch from the server file (a freeze is of one base)."""
    try:
        config = load_server_config(load_settings().config_path())
    except ConfigError as exc:
        raise CommandError(f"configuration is invalid:\n{exc}") from None
    return config.repo(repo).base_branch


def submit(name: EventName, repo: str, **fields: Any) -> tuple[int, bool, dict[str, Any] | None]:
    """Validate and store; (exit code, stored, the repo's status after). Messages on stderr."""
    try:
        parsed = parse_event({"name": name.value, "repo": repo, **fields})
    except EventError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 2, False, None
    envelope = envelope_for(parsed.event, source=SOURCE)
    try:
        stored, status = run_job(_store(envelope), doing="write the event log")
    except CommandError as exc:
        return exc.exit(), False, None
    return 0, stored, status
