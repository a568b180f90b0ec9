"""A running `mergebot serve` switches a repo from shadow to live on SIGHUP: a live request below
the cutover bar stays in shadow (log line, status flag), a broken file is refused and changes
nothing, an accepted cutover goes live — and every event posted meanwhile is stored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mergebot.queue import IntegrationRecord
from mergebot.runtime import Runtime
from mergebot.store.keys import Keys
from tests.conftest import free_port
from tests.e2e.test_serve_process import server_env, wait_for_line
from tests.gitutil import GitRemote
from tests.integrationkit import (
    REPO,
    Cand,
    candidate_events,
    items,
    make_candidate,
    post_events,
    server_toml,
)
from tests.waiting import until, wait_healthy

pytestmark = pytest.mark.slow


def queue_status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/repos/{REPO}/queue", timeout=10) as response:
        return dict(json.loads(response.read()))


class Server:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path, config: Path) -> None:
        self.process, self.url, self.log, self.config = process, url, log, config

    async def reload(self, text: str, expect: str) -> None:
        """Write the server file, send SIGHUP, and wait for the log line that answers it."""
        seen = self.log.read_text().count(expect)
        self.config.write_text(text)
        self.process.send_signal(signal.SIGHUP)
        await until(lambda: self.log.read_text().count(expect) > seen, timeout=30, what=expect)


@pytest.fixture
def server(tmp_path: Path, remote: GitRemote, redis_url: str, keys: Keys) -> Iterator[Server]:
    config = tmp_path / "mergebot.toml"
    config.write_text(server_toml(remote, mode="shadow"))
    port, log = free_port(), tmp_path / "serve.log"
    env = server_env(tmp_path / "data", port) | {
        "MERGEBOT_REDIS_URL": redis_url,
        "MERGEBOT_KEY_PREFIX": keys.prefix,
        "MERGEBOT_CONFIG": str(config),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mergebot", "serve"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            wait_for_line(log, "worker_started", process)
            yield Server(process, url, log, config)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


async def _wait_integrated(runtime: Runtime, cand: Cand) -> IntegrationRecord:
    async def done() -> bool:
        found = (await items(runtime)).get(cand.slug)
        return found is not None and found.status.value == "integrated"

    await until(done, timeout=60, what=f"{cand.slug} integrated")
    return (await items(runtime))[cand.slug].integration


async def test_sighup_switches_mode_and_keeps_every_event(
    server: Server, remote: GitRemote, runtime: Runtime
) -> None:
    base0 = remote.rev("main")
    one = make_candidate(remote, "one", "one.txt", "1\n")
    assert post_events(server.url, candidate_events(one, 1)) == 201
    assert (await _wait_integrated(runtime, one)).mode == "shadow"
    assert remote.rev("main") == base0  # shadow: nothing pushed

    # Live below the bar: stays in shadow, says so in the log and in the queue API.
    bar = '[repos."acme/widgets".cutover]\nmin_parity = 0.9\nmin_decisions = 5\n'
    await server.reload(server_toml(remote, mode="live") + bar, "cutover_held_in_shadow")
    assert "decisions=0" in server.log.read_text()
    status = queue_status(server.url)
    assert status["mode"] == "shadow"
    assert status["cutover"]["requested_mode"] == "live"
    assert status["cutover"]["held_back"] is True
    assert "0 compared decisions, 5 needed" in status["cutover"]["reason"]
    two = make_candidate(remote, "two", "two.txt", "2\n")
    assert post_events(server.url, candidate_events(two, 2)) == 201
    assert (await _wait_integrated(runtime, two)).mode == "shadow"
    assert remote.rev("main") == base0

    # A broken file on SIGHUP is refused; the running configuration stays.
    await server.reload("[repos.\n", "config_reload_refused")
    assert queue_status(server.url)["cutover"]["held_back"] is True

    # Accepted: live. Events keep arriving while the file is read again.
    posted: list[int] = []
    steady = [
        {"name": "resume_requested", "id": f"steady-{n}", "repo": REPO, "slug": f"other-{n}",
         "requested_by": "carol", "at": "2026-11-25T10:00:00+00:00"}
        for n in range(60)
    ]  # fmt: skip

    def keep_posting() -> None:
        for event in steady:
            posted.append(post_events(server.url, [event]))

    sender = threading.Thread(target=keep_posting)
    sender.start()
    accepted = '[repos."acme/widgets".cutover]\nmin_parity = 0.9\naccepted = true\n'
    await server.reload(server_toml(remote, mode="live") + accepted, "config_reloaded")
    sender.join(timeout=60)
    assert posted == [201] * len(steady)
    for event in steady:
        assert await runtime.eventlog.get(event["id"], REPO) is not None
    status = queue_status(server.url)
    assert (status["mode"], status["cutover"]["held_back"]) == ("live", False)

    three = make_candidate(remote, "three", "three.txt", "3\n")
    assert post_events(server.url, candidate_events(three, 3)) == 201
    landed = await _wait_integrated(runtime, three)
    assert landed.mode == "live"
    assert remote.rev("main") == landed.main_after
    assert server.process.poll() is None
    assert "Traceback" not in server.log.read_text()
