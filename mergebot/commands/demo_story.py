"""The `mergebot demo` story: a real mergebot merging real branches of a throw-away repository.

Everything lives in one directory: a bare git repository standing in for the forge (`forge =
"git"`), mergebot's data dir with its embedded Redis, and the server file. Two contributors branch
off the same `main` and change the same line; each branch is fine alone. mergebot lands the first
(a merge commit on `main`, after a command check), then builds the second on the new `main`, finds
the conflict and blocks it with a follow-up — `main` stays green. The events go in through
`POST /events` exactly as a producer would send them; progress is read from the queue's change
stream (no polling of the queue), so the story is told as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from mergebot.commands.followups import todo_text
from mergebot.commands.serve import Wiring, serve
from mergebot.commands.status import render as render_status
from mergebot.config import Settings
from mergebot.followups import Followup
from mergebot.git.mirror import git_env
from mergebot.ids import FollowupId
from mergebot.queue import FINAL, QueueItem, Status
from mergebot.runtime import Runtime, open_runtime
from mergebot.status import repo_status
from mergebot.store.changes import follow_changes
from mergebot.store.followups import FollowupStore

REPO = "demo/widgets"
CONFLICT_FILE = "greeting.txt"
CHECK_COMMAND = "test -f README.md"

Say = Callable[[str], None]


class DemoError(Exception):
    """The story did not go as expected (the message says where it stopped)."""


@dataclass(frozen=True)
class Candidate:
    slug: str
    branch: str
    sha: str
    author: str
    title: str


@dataclass(frozen=True)
class Outcome:
    """What the demo found at the end (the CLI's exit code and the tests read it)."""

    ok: bool
    main_before: str
    main_after: str
    landed: Candidate
    blocked: Candidate
    conflict_files: list[str]
    followup_id: str | None


# -- the git side ---------------------------------------------------------------------------------


def _git(cwd: Path, *args: str, author: str = "mergebot demo") -> str:
    env = {
        **os.environ,
        **git_env(),
        "HOME": str(cwd),  # the operator's ~/.gitconfig (hooks, signing) stays out of the demo
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": f"{author.split(maxsplit=1)[0].lower()}@example.com",
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": f"{author.split(maxsplit=1)[0].lower()}@example.com",
    }
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _commit(work: Path, files: dict[str, str], message: str, author: str) -> str:
    for name, content in files.items():
        (work / name).write_text(content, encoding="utf-8")
        _git(work, "add", name)
    _git(work, "commit", "-q", "-m", message, author=author)
    return _git(work, "rev-parse", "HEAD")


def build_remote(root: Path) -> tuple[Path, str, Candidate, Candidate]:
    """The bare "forge" repository with `main` and two pushed feature branches.

    Both branches change the greeting line of `main`: each merges cleanly alone, the second
    conflicts once the first has landed."""
    bare, work = root / "widgets.git", root / "widgets"
    bare.mkdir()
    work.mkdir()
    _git(bare, "init", "-q", "--bare", "--initial-branch=main")
    _git(work, "init", "-q", "--initial-branch=main")
    _git(work, "remote", "add", "origin", str(bare))
    start = _commit(
        work,
        {"README.md": "# widgets\n\nA demo project.\n", CONFLICT_FILE: "Hello, world!\n"},
        "Start the widgets project",
        "Linus Maintainer",
    )
    _git(work, "push", "-q", "origin", "main")
    cands = []
    for slug, branch, author, title, greeting in (
        ("greet-by-name", "feature/greet-by-name", "Ada Lovelace", "Greet mergebot by name",
         "Hello, mergebot!\n"),
        ("shout", "feature/shout", "Grace Hopper", "Shout the greeting", "HELLO, WORLD!\n"),
    ):  # fmt: skip
        _git(work, "checkout", "-q", "-b", branch, start)
        sha = _commit(work, {CONFLICT_FILE: greeting}, title, author)
        _git(work, "push", "-q", "origin", branch)
        cands.append(Candidate(slug, branch, sha, author, title))
    return bare, start, cands[0], cands[1]


def server_toml(bare: Path) -> str:
    return "\n".join(
        [
            f'[repos."{REPO}"]',
            f"remote = {json.dumps(str(bare))}",
            'forge = "git"',
            "grace_seconds = 1",
            f'[repos."{REPO}".checks]',
            f"commands = {json.dumps([CHECK_COMMAND])}",
            "timeout_seconds = 60",
            "",
        ]
    )


def candidate_events(cand: Candidate, at: datetime) -> list[dict[str, Any]]:
    """The canonical events that make `cand` READY (SPEC §4), as a producer posts them."""
    stamp = at.isoformat()
    reviewer = "Linus Maintainer"
    return [
        {"name": "review_approved", "repo": REPO, "slug": cand.slug, "sha": cand.sha,
         "approved_at": stamp, "review_round": 1, "reviewer_session_id": reviewer},
        {"name": "finalize_ready", "repo": REPO, "slug": cand.slug, "branch": cand.branch,
         "sha": cand.sha, "worker_session_id": cand.author,
         "orchestrator_session_id": "demo", "ready_at": stamp},
        {"name": "branch_pushed", "repo": REPO, "branch": cand.branch, "sha": cand.sha,
         "remote": "origin", "pushed_at": stamp, "pusher": cand.author},
    ]  # fmt: skip


# -- the mergebot side ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_settings(root: Path, port: int, token: str) -> Settings:
    """Settings of the demo server; every value that matters is given, so no MERGEBOT_* variable
    of the caller's environment (another Redis, another config) leaks into the demo."""
    return Settings(
        redis_url=None,
        redis_cluster=False,
        data_dir=root / "data",
        host="127.0.0.1",
        port=port,
        url=None,
        config=root / "mergebot.toml",
        api_token=SecretStr(token),
        webhook_secret=SecretStr(secrets.token_urlsafe(24)),  # no GitHub here; keeps it quiet
        key_prefix="mergebot:v1",
        event_partitions=1,
        reconcile_interval_seconds=600,
        # The demo's checks are its own command on its own throw-away repository, and its
        # directory may sit where another user cannot go (a 0700 temporary directory).
        check_user=str(os.geteuid()),
    )


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise DemoError(f"gave up waiting for {what}")


async def _wait_healthy(http: aiohttp.ClientSession, url: str, deadline: Deadline) -> None:
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return
        deadline.check("the server to start")
        await asyncio.sleep(0.05)


async def _post(http: aiohttp.ClientSession, url: str, token: str, body: object) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(url + "/events", json=body, headers=headers) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 201:
            raise DemoError(f"POST /events answered {resp.status}: {answer}")
        return answer


def _sha7(sha: str) -> str:
    return sha[:7]


async def _watch_queue(
    runtime: Runtime, say: Say, slugs: set[str], deadline: Deadline, server: asyncio.Task[None]
) -> dict[str, QueueItem]:
    """Tell every queue change as it is recorded, until each slug's item is final or blocked."""
    last = "0"
    settled: dict[str, QueueItem] = {}
    while set(settled) != slugs:
        if server.done():
            raise DemoError("mergebot stopped before the story ended (interrupted?)")
        deadline.check("both candidates to settle")
        block_ms = max(1, min(500, int(deadline.left() * 1000)))
        # Unreadable entries are recorded and counted by the reader; the story goes on.
        last, changes = await follow_changes(
            runtime.redis, runtime.keys, REPO, last, count=100, block_ms=block_ms
        )
        for change in changes:
            item = change.item
            moved = f"{change.previous or 'new'} -> {change.to}"
            say(f"  queue  {item.slug:<14} {moved:<26} {change.cause}")
            if item.slug in slugs and (item.status in FINAL or item.status is Status.BLOCKED):
                settled[item.slug] = item
    return settled


async def _wait_followup(
    runtime: Runtime, followup_id: FollowupId, deadline: Deadline
) -> Followup | None:
    """The follow-ups' consumer opens the follow-up from the `integration_blocked` event just
    after the block; there is no signal for it, so this looks again briefly until the deadline."""
    store = FollowupStore(runtime.redis, runtime.keys)
    while deadline.left() > 0:
        found = await store.get(REPO, followup_id)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    return None


async def _send(
    http: aiohttp.ClientSession, url: str, token: str, say: Say, *cands: Candidate
) -> None:
    """POST each candidate's events (the first one ready first: the queue is FIFO by ready_at)."""
    say("Sending the canonical events (POST /events):")
    now = datetime.now(UTC)
    for n, cand in enumerate(cands):
        events = candidate_events(cand, now - timedelta(seconds=10 - n))
        answer = await _post(http, url, token, events)
        for event, stored in zip(events, answer["stored"], strict=True):
            new = "stored" if not stored["duplicate"] else "duplicate"
            say(f"  {event['name']:<16} {cand.slug:<14} {_sha7(str(event['sha']))}  -> {new}")


def _tell_history(bare: Path, say: Say) -> None:
    history = _git(bare, "log", "--graph", "--format=%h %s (%an)", "main")
    say("")
    say("main's new history (git log --graph main):")
    say("\n".join(f"  {line}" for line in history.splitlines()))


async def _serve_until_interrupted(url: str, say: Say) -> None:
    """Keep the server up for a look at the dashboard until Ctrl-C (SIGINT) or SIGTERM."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    say("")
    say(f"Serving the dashboard at {url}/repos/{REPO} until Ctrl-C.")
    try:
        await done.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_demo(
    root: Path, say: Say, wiring: Wiring, *, seconds: float = 60.0, keep_serving: bool = False
) -> Outcome:
    """Run the whole story in `root` (an empty directory); the caller removes it. With
    `keep_serving` the server stays up after the story until Ctrl-C, so its links keep working."""
    deadline = Deadline(seconds)
    say(f"Setting up a throw-away repository {REPO} in {root}")
    bare, start, first, second = await asyncio.to_thread(build_remote, root)
    say(f"  main            {_sha7(start)}  Start the widgets project")
    for cand in (first, second):
        say(f"  {cand.branch:<22} {_sha7(cand.sha)}  {cand.title} ({cand.author})")
    say(f"  both change the one line of {CONFLICT_FILE}: each is fine alone, not both")
    (root / "mergebot.toml").write_text(server_toml(bare), encoding="utf-8")
    token = secrets.token_urlsafe(24)
    settings = demo_settings(root, free_port(), token)
    url = settings.server_url()

    async with open_runtime(settings, server=True) as runtime:
        stop = asyncio.Event()
        server = asyncio.create_task(serve(runtime, wiring, web_tier=True, worker=True, stop=stop))
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                await _wait_healthy(http, url, deadline)
                say("")
                say(f'mergebot is running (embedded Redis, forge "git", check `{CHECK_COMMAND}`)')
                say(f"  dashboard while it runs: {url}/repos/{REPO}")
                say("")
                await _send(http, url, token, say, first, second)
            say("")
            say("What mergebot does (the queue's change stream):")
            settled = await _watch_queue(runtime, say, {first.slug, second.slug}, deadline, server)
            landed, blocked = settled[first.slug], settled[second.slug]
            followup = None
            if blocked.status is Status.BLOCKED and blocked.followup_id:
                followup = await _wait_followup(runtime, blocked.followup_id, deadline)
            say("")
            say("The queue now (as `mergebot status` shows it):")
            say(render_status(await repo_status(runtime, REPO)))
            todo = await todo_text(runtime, followup, {}) if followup is not None else None
            if keep_serving:
                await _serve_until_interrupted(url, say)
        finally:
            stop.set()
            await server

    await asyncio.to_thread(_tell_history, bare, say)
    say("")
    if followup is not None and todo is not None:
        say(f"The follow-up todo of the blocked candidate ({followup.id}):")
        say("\n".join(f"  | {line}" for line in todo.rstrip().splitlines()))
    else:
        say(f"No follow-up was stored for {second.slug}.")
    files = followup.info().files if followup is not None else []
    main_after = await asyncio.to_thread(_git, bare, "rev-parse", "main")
    parents = (await asyncio.to_thread(_git, bare, "rev-list", "--parents", "-n1", "main")).split()
    ok = (
        landed.status is Status.INTEGRATED
        and blocked.status is Status.BLOCKED
        and parents[1:] == [start, first.sha]
        and CONFLICT_FILE in files
    )
    return Outcome(ok, start, main_after, first, second, files, blocked.followup_id)
