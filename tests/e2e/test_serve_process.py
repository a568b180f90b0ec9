"""`python -m mergebot serve` as a real process: it answers, stores events on its embedded Redis,
shuts down cleanly on SIGTERM (taking its redis-server with it) and keeps the data for the next
start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mergebot.main import main
from tests.conftest import API_TOKEN, free_port
from tests.unit.test_docs import healthcheck_command
from tests.waiting import until_sync, wait_healthy

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        MERGEBOT_DATA_DIR=str(data_dir),
        MERGEBOT_PORT=str(port),
        MERGEBOT_API_TOKEN=API_TOKEN,
    )
    return env


def child_pids(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@contextlib.contextmanager
def running_serve(
    tmp_path: Path, data_dir: Path, log_name: str = "serve.log"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`mergebot serve` on `data_dir` and a free port, healthy, killed at the end if still up."""
    port = free_port()
    with (tmp_path / log_name).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mergebot", "serve"],
            cwd=tmp_path,
            env=server_env(data_dir, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            yield process, url
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    data_dir = tmp_path / "data"
    with running_serve(tmp_path, data_dir) as (process, url):
        yield process, url, data_dir


def test_serve_stops_cleanly_on_sigterm_and_keeps_the_events(
    serve: tuple[subprocess.Popen[bytes], str, Path],
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    process, url, data_dir = serve
    redis_pids = {
        pid for pid in child_pids(process.pid)
        if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
    }  # fmt: skip
    assert len(redis_pids) == 1
    with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "ready"

    fields = ["repo=acme/widgets", "slug=pr-1", "requested_by=carol", "id=res-1"]
    assert main(["emit", "resume_requested", *fields, "--url", url]) == 0

    probe = [sys.executable, *healthcheck_command()[1:]]  # the Dockerfile's HEALTHCHECK
    probe_env = {**os.environ, "MERGEBOT_PORT": url.rsplit(":", 1)[1]}
    assert subprocess.run(probe, env=probe_env, capture_output=True, check=False).returncode == 0

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert all(gone(pid) for pid in redis_pids)
    assert subprocess.run(probe, env=probe_env, capture_output=True, check=False).returncode != 0
    log = (tmp_path / "serve.log").read_text()
    assert "shutdown_complete" in log
    assert "Traceback" not in log

    # The next start (here: a CLI command on the same data dir) finds the event.
    capsys.readouterr()
    monkeypatch.delenv("MERGEBOT_REDIS_URL")
    monkeypatch.delenv("MERGEBOT_KEY_PREFIX")
    monkeypatch.setenv("MERGEBOT_DATA_DIR", str(data_dir))
    assert main(["events", "--json"]) == 0
    [envelope] = json.loads(capsys.readouterr().out)
    assert (envelope["id"], envelope["source"]) == ("res-1", "api")
    assert envelope["payload"]["requested_by"] == "carol"


def wait_for_line(path: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    def written() -> bool:
        if text in path.read_text():
            return True
        if process.poll() is not None:
            raise AssertionError(f"exited early with {process.returncode}: {path.read_text()}")
        return False

    until_sync(written, f"{text!r} in {path}", timeout=30)


@pytest.mark.parametrize("command", ["web", "worker"])
def test_web_and_worker_run_apart_on_a_shared_redis(
    command: str, tmp_path: Path, redis_url: str
) -> None:
    port = free_port()
    env = server_env(tmp_path / "data", port) | {"MERGEBOT_REDIS_URL": redis_url}
    log_path = tmp_path / f"{command}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mergebot", command],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            started = "worker_started" if command == "worker" else "server_started"
            wait_for_line(log_path, started, process)
            if command == "web":
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    assert r.status == 200
            else:
                with pytest.raises(OSError):  # the worker listens on nothing
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert not (tmp_path / "data" / "redis").exists()  # with a URL, no embedded server


def test_serve_killed_with_sigkill_starts_again_on_the_same_data_dir(
    tmp_path: Path, serve: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    """`kill -9` of `mergebot serve` (an operator, the OOM killer, a supervisor restarting only
    the main process) takes its redis-server with it; the next start needs no hand work and finds
    every event the killed one acknowledged."""
    process, url, data_dir = serve
    [redis_pid] = [
        pid for pid in child_pids(process.pid)
        if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
    ]  # fmt: skip
    event = {"name": "resume_requested", "id": "kept-1", "repo": "acme/widgets", "slug": "pr-1",
             "requested_by": "carol", "at": "2026-01-01T00:00:00Z"}  # fmt: skip
    body = json.dumps(event)
    request = urllib.request.Request(
        url + "/events", data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 201

    process.kill()  # SIGKILL
    process.wait(timeout=10)
    until_sync(lambda: gone(redis_pid), "the redis-server to go with its killed owner",
               timeout=15, interval=0.02)  # fmt: skip

    with running_serve(tmp_path, data_dir, "again.log") as (again, again_url):
        request.full_url = again_url + "/events"  # the same event again: already stored
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.loads(resp.read())["stored"] == [{"id": "kept-1", "duplicate": True}]
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0


@pytest.mark.allow_error_logs
def test_a_token_in_a_header_the_parser_rejects_leaves_no_trace_in_the_log(
    tmp_path: Path, serve: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    """aiohttp logs the start of a header it cannot parse (a NUL byte, an overlong line) at
    ERROR; with the API token in that header, the log must still not show it, whole or cut."""
    process, url, _ = serve
    port = int(url.rsplit(":", 1)[1])
    token = API_TOKEN.encode()
    bad_headers = [
        b"Authorization: Bearer " + token + b"\x00\r\n",
        b"Authorization: Bearer " + token + b"A" * 9000 + b"\r\n",
        b"X-Pad: " + b"p" * 75 + b"\r\nAuthorization: Bearer " + token + b"\x01\r\n",
    ]
    for header in bad_headers:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
            assert b" 400 " in sock.recv(64)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "Error handling request" in log  # aiohttp did log the rejected headers
    for start in range(len(API_TOKEN) - 8 + 1):
        assert API_TOKEN[start : start + 8] not in log
