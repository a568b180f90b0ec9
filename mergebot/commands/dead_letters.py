"""`mergebot dead-letters`: notifications no sink would take, and retrying them."""

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
from mergebot.store.embedded import EmbeddedRedisError
from mergebot.store.notify import NotifyStore

HELP = "list undeliverable notifications (dead letters) and retry them"


def _repo(text: str) -> str:
    if not is_repo(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a repo name of the form owner/name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=_repo, help="only this repo (owner/name)")
    parser.add_argument("--json", action="store_true", help="a JSON array")
    parser.add_argument(
        "--retry", metavar="ID", action="append", default=[], help="retry this dead letter"
    )
    parser.add_argument("--retry-all", action="store_true", help="retry every listed dead letter")


def line(letter: dict[str, Any]) -> str:
    sha = str(letter.get("sha") or "")[:7] or "-"
    return (
        f"{letter['id']}  {letter['at'][:19]}  {letter['repo']} {letter.get('slug') or '-'} {sha}"
        f"  {letter.get('kind') or '-'} -> {letter['sink']}  after {letter['attempts']} attempts:"
        f" {letter['last_error']}"
    )


async def _main(args: argparse.Namespace) -> int:
    async with open_runtime(load_settings()) as runtime:
        store = NotifyStore(runtime.redis, runtime.keys)
        letters = await store.dead_letters(args.repo)
        wanted = [str(x) for x in args.retry]
        if args.retry_all:
            wanted = [str(letter["id"]) for letter in letters]
        missing = []
        for letter_id in wanted:
            if await store.retry_dead_letter(letter_id) is None:
                missing.append(letter_id)
            else:
                print(f"retrying {letter_id}")
        if wanted:
            for letter_id in missing:
                print(f"mergebot: no dead letter {letter_id!r}", file=sys.stderr)
            return 1 if missing else 0
    if args.json:
        print(json.dumps(letters, indent=2, ensure_ascii=False))
    elif not letters:
        print("no dead letters")
    else:
        for letter in letters:
            print(line(letter))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
    except (RedisError, EmbeddedRedisError) as exc:
        print(f"mergebot: storage unavailable: {type(exc).__name__}", file=sys.stderr)
    return 1
