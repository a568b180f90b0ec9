"""`mergebot dead-letters`: notifications no sink would take, and retrying them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mergebot.commands.support import CommandError, add_repo_option, in_runtime
from mergebot.runtime import Runtime
from mergebot.store.notify import NotifyStore

HELP = "list undeliverable notifications (dead letters) and retry them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_option(parser)
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


async def _main(runtime: Runtime, args: argparse.Namespace) -> int:
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
        return in_runtime(lambda runtime: _main(runtime, args), doing="read the dead letters")
    except CommandError as exc:
        return exc.exit()
