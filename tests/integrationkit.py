"""Helpers for integrator stories: a managed plain-git repo, candidates made with real commits and
announced with canonical events, and views of the remote and the event log."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mergebot.config import parse_server_config
from mergebot.events import EventName
from mergebot.processor import process_available
from mergebot.queue import QueueItem
from mergebot.runtime import Runtime
from mergebot.store.queue import QueueStore
from tests.conftest import API_TOKEN
from tests.gitutil import GitRemote, git

REPO = "acme/widgets"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def manage_remote(runtime: Runtime, remote: GitRemote, **table: Any) -> None:
    """Make REPO a managed plain-git repo on `remote` (grace 0 unless given)."""
    runtime.server_config = parse_server_config(server_toml(remote, **table), "mergebot.toml")


def server_toml(remote: GitRemote, **table: Any) -> str:
    """The server file managing REPO on `remote`; a dict value (`checks`, `freeze`…) is a
    sub-table."""
    lines = [f'[repos."{REPO}"]', f'remote = "{remote.url}"', 'forge = "git"']
    table.setdefault("grace_seconds", 0)
    tables = {k: table.pop(k) for k in [k for k, v in table.items() if isinstance(v, dict)]}
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    for name, sub in tables.items():
        lines.append(f'[repos."{REPO}".{name}]')
        lines += [f"{key} = {json.dumps(value)}" for key, value in sub.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Cand:
    slug: str
    branch: str
    sha: str


def candidate_events(
    cand: Cand,
    n: int,
    *,
    reviewer: str = "alice",
    approve: bool = True,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """The three events that make `cand` READY; `n` orders ready_at (FIFO): minutes after a
    fixed past time, or milliseconds after `since` (for what depends on how long ago it was)."""
    step = timedelta(minutes=n) if since is None else timedelta(milliseconds=n)
    at = ((since or T0) + step).isoformat()
    events: list[dict[str, Any]] = [
        {"name": "branch_pushed", "repo": REPO, "branch": cand.branch, "sha": cand.sha,
         "remote": "origin", "pushed_at": at, "pusher": "bob"},
        {"name": "finalize_ready", "repo": REPO, "slug": cand.slug, "branch": cand.branch,
         "sha": cand.sha, "worker_session_id": "w-1", "orchestrator_session_id": "o-1",
         "ready_at": at},
    ]  # fmt: skip
    if approve:
        events.append(
            {"name": "review_approved", "repo": REPO, "slug": cand.slug, "approved_at": at,
             "review_round": 1, "reviewer_session_id": reviewer, "sha": cand.sha}
        )  # fmt: skip
    return events


def make_candidate(remote: GitRemote, slug: str, path: str, content: str) -> Cand:
    branch = f"feature/{slug}"
    return Cand(slug, branch, remote.branch_with(branch, path, content))


async def process(runtime: Runtime) -> None:
    """Fold every stored event (the processor calls the READY hook for what it queued)."""
    for partition in runtime.keys.all_partitions():
        await process_available(runtime, partition, "test-processor")


async def items(runtime: Runtime) -> dict[str, QueueItem]:
    found = await QueueStore(runtime.redis, runtime.keys).items(REPO, "main")
    return {i.slug: i for i in found}


async def outcome_events(runtime: Runtime) -> list[dict[str, Any]]:
    names = (EventName.INTEGRATION_COMPLETED, EventName.INTEGRATION_BLOCKED)
    return [
        {"name": e.envelope.name.value, **e.envelope.payload}
        async for e in runtime.eventlog.replay(repo=REPO)
        if e.envelope.name in names
    ]


def remote_snapshot(remote: GitRemote) -> tuple[str, str]:
    """Every ref and every object of the bare remote: equal snapshots, byte-for-byte equal."""
    refs = git(remote.bare, "for-each-ref", "--format=%(refname) %(objectname)")
    objects = git(remote.bare, "cat-file", "--batch-all-objects", "--batch-check")
    return refs, objects


def integration_refs(remote: GitRemote) -> list[str]:
    return [r for r in remote.refs() if r.startswith("refs/heads/mergebot/")]


def main_updates(remote: GitRemote) -> list[tuple[str, str]]:
    """(old, new) of every update of the remote's main (needs core.logAllRefUpdates)."""
    log = (remote.bare / "logs" / "refs" / "heads" / "main").read_text().splitlines()
    return [(line.split()[0], line.split()[1]) for line in log]


def enable_ref_log(remote: GitRemote) -> None:
    git(remote.bare, "config", "core.logAllRefUpdates", "always")
    git(remote.bare, "config", "receive.denyNonFastForwards", "true")


def post_events(url: str, body: list[dict[str, Any]]) -> int:
    """POST `body` to a running server's `/events` with the test token; the HTTP status."""
    request = urllib.request.Request(
        url + "/events",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)
