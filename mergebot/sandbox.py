"""How, and as whom, a check command is started, so it cannot read the server's secrets.

A check command runs the candidate's code: any pull request can make it do anything its user can.
Stripping its environment is not enough while it runs as the server's user under a readable
parent — `/proc/<ppid>/environ` still holds the server's initial environment, and its memory holds
every token. Three layers, each used when it can be:

1. **Another user.** A server running as root starts checks as `MERGEBOT_CHECK_USER` (default
   `nobody`; mergebot creates no user, the operator provides it). That user cannot read the
   server's `/proc` files, memory, data dir (`redis/` is 0700) or root-only files. The worktree
   is handed to it (chown) so builds can write there; its home and temp dir are a fresh private
   directory per command.
2. **A non-dumpable server.** A server that cannot switch user (it is not root — the Docker image)
   marks itself non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): its `/proc/<pid>/environ`, `mem` and
   `maps` become root's, and a process of the same user can no longer ptrace it. The secret
   variables are also removed from its environment once read, so children started later (git,
   GitPython's helpers) do not inherit them.
3. **A sandbox.** When `bwrap` (bubblewrap) works here, a check runs in its own pid namespace with
   a fresh `/proc` (no other process is visible at all), a private `/tmp`, the data dir replaced by
   an empty directory (only the worktree, read-write, and its mirror, read-only, are bound back),
   and every `MERGEBOT_*_FILE` secret file replaced by `/dev/null`. The network stays: checks often
   need it (package installs), so a Redis reachable over TCP must require a password.

The decisions are a value (`Sandbox`), computed once per process from the settings; `launch`
turns one command into the argv, environment and options of the child process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergebot.config import SECRET_SETTINGS, Settings, file_variable

log = logging.getLogger("mergebot.sandbox")

_PR_SET_DUMPABLE = 4
_PROBE_SECONDS = 10
_TMP = "/tmp"  # noqa: S108 - inside the sandbox: its own empty tmpfs
# Every sandbox: its own pid namespace and /proc, the host read-only, a fresh /dev and /tmp.
_BWRAP_BASE = (
    "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--ro-bind", "/", "/",
    "--dev", "/dev", "--proc", "/proc", "--tmpfs", _TMP,
)  # fmt: skip


class SandboxError(RuntimeError):
    """Check commands cannot be started as configured (a missing user, no working bwrap)."""


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    name: str


@dataclass(frozen=True)
class Launch:
    """One check command, ready for `create_subprocess_exec(*argv, env=env, **options)`."""

    argv: list[str]
    env: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sandbox:
    """How check commands are started in this process."""

    run_as: RunAs | None = None
    bwrap: str | None = None
    hidden_dirs: tuple[Path, ...] = ()
    hidden_files: tuple[Path, ...] = ()

    def unreachable(self, path: Path) -> str | None:
        """Why the check user cannot work in `path` (None: it can)."""
        if self.run_as is None:
            return None
        closed = _closed_to(path.resolve(), self.run_as)
        if closed is None:
            return None
        return (
            f"check commands run as {self.run_as.name} (MERGEBOT_CHECK_USER), who cannot enter "
            f"{closed} on the way to {path}: use a data dir that user can reach (e.g. under "
            "/var/lib), or another MERGEBOT_CHECK_USER"
        )

    def describe(self) -> str:
        who = f"user {self.run_as.name}" if self.run_as else "the server's user"
        return f"{who}, {'bubblewrap' if self.bwrap else 'no sandbox'}"

    @contextlib.contextmanager
    def launch(
        self, argv: Sequence[str], worktree: Path, env: Mapping[str, str]
    ) -> Iterator[Launch]:
        """The way to start `argv` in `worktree` for the duration of the block."""
        problem = self.unreachable(worktree)
        if problem is not None:
            raise SandboxError(problem)
        env = dict(env)
        options: dict[str, Any] = {}
        if self.run_as is not None:
            _hand_over(worktree, self.run_as)
            options = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
            # git refuses a repository another user owns (the mirror): the check may read it.
            env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory",
                       GIT_CONFIG_VALUE_0="*")  # fmt: skip
        if self.bwrap is not None:
            env.update(HOME=_TMP, TMPDIR=_TMP)
            yield Launch([*self._bwrap_args(worktree), "--", *argv], env, options)
            return
        home = Path(tempfile.mkdtemp(prefix="mergebot-check-"))
        try:
            if self.run_as is not None:
                os.chown(home, self.run_as.uid, self.run_as.gid)
            env.update(HOME=str(home), TMPDIR=str(home))
            yield Launch(list(argv), env, options)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def _bwrap_args(self, worktree: Path) -> list[str]:
        assert self.bwrap is not None
        worktree = worktree.resolve()
        args = [self.bwrap, *_BWRAP_BASE]
        for directory in self.hidden_dirs:
            args += ["--tmpfs", str(directory)]
        for secret_file in self.hidden_files:
            args += ["--ro-bind", "/dev/null", str(secret_file)]
        common = _git_common_dir(worktree)
        if common is not None:
            args += ["--ro-bind", str(common), str(common)]
        args += ["--bind", str(worktree), str(worktree), "--chdir", str(worktree)]
        return args


def _git_common_dir(worktree: Path) -> Path | None:
    """The repository a linked worktree belongs to (its `.git` file names it)."""
    try:
        text = (worktree / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.removeprefix("gitdir:").strip())
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return gitdir.resolve()
    return (gitdir / common).resolve()


def _hand_over(worktree: Path, run_as: RunAs) -> None:
    """Give the worktree to the check user (once: later commands find it handed over)."""
    if worktree.stat().st_uid == run_as.uid:
        return
    for root, dirs, files in os.walk(worktree):
        for name in [*dirs, *files]:
            os.lchown(Path(root) / name, run_as.uid, run_as.gid)
    os.chown(worktree, run_as.uid, run_as.gid)


def resolve_user(name: str) -> RunAs:
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise SandboxError(
            f"MERGEBOT_CHECK_USER={name!r}: no such user; create an unprivileged user for check "
            "commands (or name an existing one such as nobody)"
        ) from None
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _closed_to(path: Path, run_as: RunAs) -> Path | None:
    """The first existing directory on the way to `path` that `run_as` may not enter."""
    groups = set(os.getgrouplist(run_as.name, run_as.gid))
    for directory in [*reversed(path.parents), path]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            return None
        if info.st_uid == run_as.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


@functools.cache
def bwrap_works(binary: str, uid: int | None, gid: int | None) -> bool:
    """Whether `binary` can build the sandbox here, as the user checks run as (containers
    often forbid the namespaces it needs)."""
    options: dict[str, Any] = {}
    if uid is not None and gid is not None:
        options = {"user": uid, "group": gid, "extra_groups": []}
    try:
        done = subprocess.run(
            [binary, *_BWRAP_BASE, "true"],
            capture_output=True, timeout=_PROBE_SECONDS, check=False, **options,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def secret_files(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """The files the secret settings were read from (`MERGEBOT_*_FILE`)."""
    found = (environ.get(file_variable(name)) for name in SECRET_SETTINGS)
    return tuple(Path(p).resolve() for p in found if p and Path(p).exists())


def sandbox_for(settings: Settings, environ: Mapping[str, str] | None = None) -> Sandbox:
    """The sandbox check commands of this process use (SandboxError when it cannot be had)."""
    environ = os.environ if environ is None else environ
    run_as: RunAs | None = None
    data_dir = settings.data_dir.resolve()
    if os.geteuid() == 0:
        candidate = resolve_user(settings.check_user)
        run_as = candidate if candidate.uid != 0 else None
    binary: str | None = None
    if settings.check_sandbox != "none":
        found = shutil.which("bwrap")
        uid, gid = (run_as.uid, run_as.gid) if run_as else (None, None)
        if found and bwrap_works(found, uid, gid):
            binary = found
        elif settings.check_sandbox == "bwrap":
            raise SandboxError(
                "MERGEBOT_CHECK_SANDBOX=bwrap, but bubblewrap "
                + ("does not work here" if found else "is not installed (package bubblewrap)")
            )
    return Sandbox(
        run_as=run_as,
        bwrap=binary,
        hidden_dirs=(data_dir,),
        hidden_files=secret_files(environ),
    )


def protect_process(settings: Settings, sandbox: Sandbox) -> None:
    """Before a process runs check commands: make it non-dumpable when checks run as its own
    user, and drop the secret variables from its environment (they are read already) so its
    later children never inherit them."""
    if sandbox.run_as is None:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("non_dumpable_failed errno=%d", ctypes.get_errno())
    for name in SECRET_SETTINGS:
        if name != "redis_url":  # no secret unless it holds a password; read again by some
            os.environ.pop(f"MERGEBOT_{name.upper()}", None)
    log.info("checks_isolated how=%s", sandbox.describe())


def isolate_checks(settings: Settings) -> Sandbox:
    """At the start of a server process: decide how checks run (failing fast when they cannot
    run as configured) and protect the process accordingly."""
    sandbox = sandbox_for(settings)
    protect_process(settings, sandbox)
    problem = sandbox.unreachable(settings.data_dir)
    if problem is not None:
        log.warning("checks_cannot_run %s", problem)
    return sandbox
