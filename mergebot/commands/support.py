"""What the subcommands that work on the store share (not a subcommand itself).

A short command opens the runtime from the environment, does one job, and closes it again; its
failures are the same for all of them — a configuration that does not parse, an embedded Redis
that cannot start, a Redis that does not answer — and each is told in one line on stderr with
exit code 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from redis.exceptions import RedisError

from mergebot.config import ConfigError, load_settings
from mergebot.ids import is_repo
from mergebot.runtime import Runtime, open_runtime
from mergebot.store.embedded import EmbeddedRedisError

T = TypeVar("T")


def repo_name(text: str) -> str:
    """An argparse `type` for a repo argument: `owner/name` or a usage error."""
    if not is_repo(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a repo name of the form owner/name")
    return text


def add_repo_option(
    parser: argparse.ArgumentParser, description: str = "only this repo (owner/name)"
) -> None:
    parser.add_argument("--repo", type=repo_name, help=description)


class CommandError(Exception):
    """A failure the user is told about in one line; `exit()` prints it and gives the code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    def exit(self) -> int:
        print(f"mergebot: {self}", file=sys.stderr)
        return self.code


def run_job(job: Coroutine[Any, Any, T], *, doing: str) -> T:
    """`asyncio.run(job)`, with the store's failures raised as `CommandError`s saying what could
    not be done (`doing`, e.g. "read the event log")."""
    try:
        return asyncio.run(job)
    except ConfigError as exc:
        raise CommandError(f"configuration is invalid:\n{exc}") from None
    except EmbeddedRedisError as exc:
        raise CommandError(str(exc)) from None
    except (RedisError, OSError) as exc:
        raise CommandError(f"cannot {doing}: {type(exc).__name__}: {exc}") from None


def in_runtime(work: Callable[[Runtime], Awaitable[T]], *, doing: str) -> T:
    """Open the runtime from the environment, run `work` on it and close it (see `run_job`)."""

    async def job() -> T:
        async with open_runtime(load_settings()) as runtime:
            return await work(runtime)

    return run_job(job(), doing=doing)
