"""`mergebot followups`: the blocked follow-ups as Markdown todos or JSON, on stdout or as files
(`--out todos` writes `todos/<follow-up id>.md`, one per follow-up)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from mergebot.commands.support import CommandError, add_repo_option, in_runtime
from mergebot.followups import Followup, FollowupStatus
from mergebot.ids import FollowupId
from mergebot.notify.view import followup_context, links_for
from mergebot.render import TemplateError, render_todo
from mergebot.runtime import Runtime
from mergebot.status import landing_of
from mergebot.store.followups import FollowupStore

HELP = "export blocked follow-ups as Markdown todos or JSON"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_option(parser)
    parser.add_argument(
        "--status", choices=[s.value for s in FollowupStatus], help="only follow-ups in this status"
    )
    parser.add_argument("--format", choices=["md", "json"], default="md", help="default md")
    parser.add_argument(
        "--out", type=Path, help="write one file per follow-up into this directory (e.g. todos)"
    )


def file_name(followup: Followup, ext: str) -> str:
    """A file name that stays inside the directory whatever the id holds."""
    name = _UNSAFE.sub("_", followup.id).lstrip(".") or "followup"
    return f"{name[:150]}.{ext}"


async def todo_text(
    runtime: Runtime, followup: Followup, by_id: Mapping[FollowupId, Followup]
) -> str:
    links = links_for(runtime.settings, runtime.server_config, followup.repo)
    context = followup_context(
        followup,
        links,
        previous=by_id.get(followup.previous_id) if followup.previous_id else None,
        landed_by=await landing_of(runtime, followup.repo, followup.info().base_sha),
    )
    return render_todo(context, templates_dir=runtime.server_config.templates_dir) + "\n"


async def _texts(runtime: Runtime, args: argparse.Namespace) -> list[tuple[Followup, str]]:
    """The chosen follow-ups, each with its text in the asked format."""
    status = FollowupStatus(args.status) if args.status else None
    store = FollowupStore(runtime.redis, runtime.keys)
    known = cast(set[str], await runtime.redis.smembers(runtime.keys.repos()))
    repos = [args.repo] if args.repo else sorted(known)
    everything: list[Followup] = []
    for repo in repos:
        everything += await store.query(repo)
    by_id = {f.id: f for f in everything}
    return [
        (
            f,
            json.dumps(f.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
            if args.format == "json"
            else await todo_text(runtime, f, by_id),
        )
        for f in everything
        if status is None or f.status is status
    ]


def _write(args: argparse.Namespace, texts: list[tuple[Followup, str]]) -> None:
    ext = "json" if args.format == "json" else "md"
    if args.out is None:
        if ext == "json":
            print(json.dumps([json.loads(t) for _, t in texts], indent=2, ensure_ascii=False))
        else:
            print("\n---\n\n".join(t for _, t in texts), end="")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for followup, text in texts:
        path = args.out / file_name(followup, ext)
        path.write_text(text, encoding="utf-8")
        print(path)
    if not texts:
        print("no follow-ups", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        texts = in_runtime(lambda runtime: _texts(runtime, args), doing="read the follow-ups")
        _write(args, texts)
    except CommandError as exc:
        return exc.exit()
    except TemplateError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"mergebot: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0
