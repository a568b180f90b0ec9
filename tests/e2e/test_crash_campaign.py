"""A crash-and-race campaign: mergebot killed and frozen at random moments must still keep every
invariant of SPEC §11, as judged from the remote's reflog and the event log alone
(`tests/invariants.py`).

1. `mergebot serve` (embedded Redis, as deployed by default) is SIGKILLed several times while
   candidates arrive and integrate, and started again on the same data dir each time; a producer
   re-sends what it got no 2xx for.
2. Three `mergebot worker`s share one Redis; the lease holder is frozen (SIGSTOP) past its lease
   while its check runs, a restarted replica takes over, then the frozen one is thawed (SIGCONT)
   in the middle of the newcomer's work — a holder that lost its lease without knowing it.

When to kill and how long to freeze are drawn from a seeded generator
(`MERGEBOT_CAMPAIGN_SEED`, default 1414; `MERGEBOT_CAMPAIGN_ROUNDS` for more rounds), so a
failure can be replayed; the invariants must hold for any timing, so the load of the machine can
change what happens, never whether it passes. Each campaign is bounded (about a minute).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mergebot.events import envelope_for, parse_event
from mergebot.store.connection import RedisClient, connect
from mergebot.store.embedded import EmbeddedRedis
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from tests.conftest import API_TOKEN, free_port
from tests.gitutil import GitRemote
from tests.integrationkit import REPO, Cand, candidate_events, enable_ref_log, make_candidate
from tests.integrationkit import server_toml as repo_toml
from tests.invariants import base_updates_since, is_ancestor_on, violations
from tests.waiting import until_sync, wait_healthy

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("MERGEBOT_CAMPAIGN_SEED", "1414"))
ROUNDS = int(os.environ.get("MERGEBOT_CAMPAIGN_ROUNDS", "3"))
# A restarted server folds events again once the killed one's processor lease ran out (30 s).
PROGRESS_SECONDS = 45
SETTLE_SECONDS = 180
LEASE = {"lease_ttl_seconds": 2, "lease_renew_seconds": 0.5, "grace_seconds": 1}
# The check gives the faults something to land in: long enough to be caught running.
# A candidate adding a `bad-*` file fails it. Batches of three at depth 2: the faults land in
# batches, bisections and concurrent halves too.
CHECK = "test -f README.md && ! ls bad-*.txt >/dev/null 2>&1 && sleep 0.4"
TRAIN = {"batch": {"max_size": 3}, "pipeline": {"depth": 2}}
pytestmark = pytest.mark.slow


def _candidates(remote: GitRemote) -> list[Cand]:
    """Seven candidates: pr-4's checks fail (a culprit, found by bisection when it comes in a
    batch), pr-6 conflicts with pr-1 (one of the two ends blocked, whichever comes second), the
    others are independent."""
    files = {4: ("bad-4.txt", "4\n"), 6: ("f1.txt", "not one\n")}
    return [
        make_candidate(remote, f"pr-{n}", *files.get(n, (f"f{n}.txt", f"{n}\n")))
        for n in range(1, 8)
    ]


def _events(cands: list[Cand]) -> list[dict[str, Any]]:
    """Every candidate's events, each with a producer id (so a re-send is a duplicate)."""
    return [
        {**event, "id": f"{cand.slug}-{event['name']}"}
        for n, cand in enumerate(cands)
        for event in candidate_events(cand, n)
    ]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
    # Checks run as this user, unsandboxed: the campaign is about crashes, not isolation.
    env.update(PYTHONPATH=str(REPO_ROOT), MERGEBOT_CHECK_USER=str(os.geteuid()),
               MERGEBOT_CHECK_SANDBOX="none", **values)  # fmt: skip
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _report(found: list[str], seed: int, logs: list[Path]) -> str:
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)
    return f"seed {seed}: invariants broken:\n" + "\n".join(found) + "\n" + tails


# -- 1. SIGKILL of `mergebot serve` ----------------------------------------------------------------


class Serve:
    """`mergebot serve` on one data dir, killed and restarted at will."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root, self.config = root, config
        self.data = root / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.logs: list[Path] = []

    def start(self) -> None:
        port = free_port()
        log_path = self.root / f"serve-{len(self.logs)}.log"
        self.logs.append(log_path)
        env = _env(MERGEBOT_DATA_DIR=str(self.data), MERGEBOT_PORT=str(port),
                   MERGEBOT_CONFIG=str(self.config), MERGEBOT_API_TOKEN=API_TOKEN)  # fmt: skip
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mergebot", "serve"], cwd=self.root, env=env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        wait_healthy(self.url, self.process, 60, context=lambda: log_path.read_text()[-3000:])

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def post(self, events: list[dict[str, Any]]) -> bool:
        """Send `events`; True only when the server answered 2xx (the producer's view)."""
        request = urllib.request.Request(
            self.url + "/events", data=json.dumps(events).encode(), method="POST",
            headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return 200 <= resp.status < 300
        except OSError:
            return False

    def wait_for_work(self, seconds: float) -> None:
        """Until a candidate is in progress, or `seconds` passed: no work by then is not a
        failure (the kill then lands before any integration started, a case worth covering)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if "in_progress" in {c["status"] for c in self._candidates()}:
                return
            time.sleep(0.05)

    def _candidates(self) -> list[dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{self.url}/api/repos/{REPO}/queue", timeout=5) as r:
                return list(json.loads(r.read())["candidates"])
        except OSError:
            return []

    def settled(self, slugs: set[str]) -> bool:
        final = {c["slug"] for c in self._candidates() if c["status"] in ("integrated", "blocked")}
        return slugs <= final


async def _stored_envelopes(data_dir: Path) -> list[dict[str, Any]]:
    """The event log of the embedded Redis of `data_dir`, read after its servers stopped."""
    server = EmbeddedRedis(data_dir)
    client = connect(server.start())
    try:
        return [e.envelope.model_dump(mode="json") async for e in EventLog(client, Keys()).replay()]
    finally:
        await client.aclose()
        server.stop()


@pytest.fixture
def served(tmp_path: Path, remote: GitRemote) -> Iterator[Serve]:
    enable_ref_log(remote)
    config = tmp_path / "mergebot.toml"
    config.write_text(repo_toml(remote, checks={"commands": [CHECK]}, **TRAIN, **LEASE))
    serve = Serve(tmp_path, config)
    try:
        yield serve
    finally:
        if serve.process is not None:
            _stop(serve.process)


async def test_randomized_sigkills_of_serve_break_no_invariant(
    served: Serve, remote: GitRemote
) -> None:
    rng = random.Random(SEED)
    start = remote.rev("main")
    cands = _candidates(remote)
    # One candidate's events per round (in a random order), so candidates become ready early and
    # the kills land in the middle of their integration, not before it.
    events = _events(cands)
    unsent = [
        e for cand in cands
        for e in rng.sample([e for e in events if e["id"].startswith(f"{cand.slug}-")], 3)
    ]  # fmt: skip
    acknowledged: set[str] = set()
    served.start()
    for _ in range(ROUNDS):
        batch, unsent = unsent[:3], unsent[3:]
        if batch and served.post(batch):
            acknowledged |= {e["id"] for e in batch}
        else:
            unsent = batch + unsent  # the producer sends it again later
        # The fault: a SIGKILL at a random moment of an integration (seen from outside: a
        # candidate in progress), or of whatever the server does when none comes in time.
        served.wait_for_work(PROGRESS_SECONDS)
        time.sleep(rng.uniform(0.0, 1.5))
        served.kill()
        served.start()  # on the same data dir, with no hand work
    for event in unsent:
        assert served.post([event]), "the restarted server refused an event"
        acknowledged.add(event["id"])
    slugs = {c.slug for c in cands}
    until_sync(lambda: served.settled(slugs), "every candidate to settle",
               timeout=SETTLE_SECONDS, interval=0.2,
               context=lambda: _report(["never settled"], SEED, served.logs))  # fmt: skip
    assert served.process is not None
    _stop(served.process)

    envelopes = await _stored_envelopes(served.data)
    found = violations(
        base_updates_since(remote, start), envelopes,
        is_ancestor=is_ancestor_on(remote), parents=remote.parents, acknowledged=acknowledged,
    )  # fmt: skip
    assert found == [], _report(found, SEED, served.logs)
    landed = [e for e in envelopes if e["name"] == "integration_completed"]
    assert len(landed) >= 5, "the campaign must integrate something to judge"


# -- 2. SIGSTOP of the lease holder among three workers -----------------------------------------


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:  # it has just exited
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _running_check(workers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes] | None:
    """The worker running a check command right now: the lease holder, seen from outside."""
    for worker in workers:
        for pid in _descendants(worker.pid):
            try:
                if b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return worker
            except OSError:
                continue
    return None


async def _outcomes(eventlog: EventLog) -> set[str]:
    names = ("integration_completed", "integration_blocked")
    return {e.envelope.payload["slug"] async for e in eventlog.replay() if e.envelope.name in names}


async def test_a_frozen_lease_holder_among_three_workers_breaks_no_invariant(
    tmp_path: Path, remote: GitRemote, redis: RedisClient, keys: Keys, redis_url: str
) -> None:
    rng = random.Random(SEED + 1)
    enable_ref_log(remote)
    start = remote.rev("main")
    config = tmp_path / "mergebot.toml"
    config.write_text(repo_toml(remote, checks={"commands": [CHECK]}, **TRAIN, **LEASE))
    cands = _candidates(remote)
    eventlog = EventLog(redis, keys)
    raws = _events(cands)
    envelopes = [envelope_for(parse_event(r).event, source="test", event_id=r["id"]) for r in raws]
    await eventlog.append_many(envelopes)
    env = _env(MERGEBOT_REDIS_URL=redis_url, MERGEBOT_KEY_PREFIX=keys.prefix,
               MERGEBOT_CONFIG=str(config))  # fmt: skip
    logs: list[Path] = []

    def start_worker(n: int) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"worker-{n}-{len(logs)}.log"
        logs.append(log_path)
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "mergebot", "worker"], cwd=tmp_path,
                env={**env, "MERGEBOT_DATA_DIR": str(tmp_path / f"data-{n}")},
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    workers = [start_worker(n) for n in range(3)]
    slugs = {c.slug for c in cands}
    try:
        frozen = 0
        deadline = time.monotonic() + SETTLE_SECONDS
        while frozen < min(ROUNDS, 3) and await _outcomes(eventlog) != slugs:
            assert time.monotonic() < deadline, _report(["no holder to freeze"], SEED, logs)
            holder = _running_check(workers)
            if holder is None:
                await asyncio.sleep(0.02)
                continue
            # The fault: the holder stops dead mid-check and its lease runs out; a replica is
            # restarted meanwhile (its start-up sweep takes the lease over); the frozen holder
            # wakes up at a random moment of the newcomer's work, not knowing it lost the lease.
            holder.send_signal(signal.SIGSTOP)
            await asyncio.sleep(LEASE["lease_ttl_seconds"] + 0.3)
            n = rng.choice([i for i, w in enumerate(workers) if w is not holder])
            _stop(workers[n])
            workers[n] = start_worker(n)
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            holder.send_signal(signal.SIGCONT)
            frozen += 1
        while await _outcomes(eventlog) != slugs:
            assert time.monotonic() < deadline, _report(["never settled"], SEED, logs)
            await asyncio.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGCONT)
            _stop(worker)

    stored = [e.envelope.model_dump(mode="json") async for e in eventlog.replay()]
    found = violations(
        base_updates_since(remote, start), stored,
        is_ancestor=is_ancestor_on(remote), parents=remote.parents,
        acknowledged=[e.id for e in envelopes],
    )  # fmt: skip
    assert found == [], _report(found, SEED, logs)
    assert frozen >= 1, "no lease holder was ever caught running a check"
