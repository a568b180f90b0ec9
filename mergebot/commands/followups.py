"""`mergebot followups`: the blocked follow-ups as Markdown todos or JSON, on stdout or as files
(`--out todos` writes `todos/<follow-up id>.md`, one per follow-up)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import cast

from redis.exceptions import RedisError

from mergebot.bootstrap import Runtime, open_runtime
from mergebot.config import ConfigError, load_settings
from mergebot.followups import Followup, FollowupStatus
from mergebot.ids import is_repo
from mergebot.notify.view import TODO_TEMPLATE, followup_context, links_for
from mergebot.render import TemplateError, renderer
from mergebot.store.embedded import EmbeddedRedisError
from mergebot.store.followups import FollowupStore

HELP = "export blocked follow-ups as Markdown todos or JSON"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _repo(text: str) -> str:
    if not is_repo(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a repo name of the form owner/name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=_repo, help="only this repo (owner/name)")
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


def render_todo(runtime: Runtime, followup: Followup, by_id: dict[str, Followup]) -> str:
    links = links_for(runtime.settings, runtime.server_config, followup.repo)
    context = followup_context(followup, links, previous=by_id.get(followup.previous_id or ""))
    return renderer(runtime.server_config.templates_dir).render(TODO_TEMPLATE, context) + "\n"


async def _export(args: argparse.Namespace) -> int:
    status = FollowupStatus(args.status) if args.status else None
    async with open_runtime(load_settings()) as runtime:
        store = FollowupStore(runtime.redis, runtime.keys)
        known = cast(set[str], await runtime.redis.smembers(runtime.keys.repos()))
        repos = [args.repo] if args.repo else sorted(known)
        everything: list[Followup] = []
        for repo in repos:
            everything += await store.query(repo)
        by_id = {f.id: f for f in everything}
        chosen = [f for f in everything if status is None or f.status is status]
        ext = "json" if args.format == "json" else "md"
        texts = [
            json.dumps(f.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
            if ext == "json"
            else render_todo(runtime, f, by_id)
            for f in chosen
        ]
    if args.out is None:
        if ext == "json":
            print(json.dumps([json.loads(t) for t in texts], indent=2, ensure_ascii=False))
        else:
            print("\n---\n\n".join(texts), end="")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for followup, text in zip(chosen, texts, strict=True):
        path = args.out / file_name(followup, ext)
        path.write_text(text, encoding="utf-8")
        print(path)
    if not chosen:
        print("no follow-ups", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_export(args))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
    except TemplateError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
    except OSError as exc:
        print(
            f"mergebot: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr
        )
    except (RedisError, EmbeddedRedisError) as exc:
        print(f"mergebot: storage unavailable: {type(exc).__name__}", file=sys.stderr)
    return 1
