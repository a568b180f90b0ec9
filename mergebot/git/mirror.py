"""One persistent bare mirror per repo under the data dir: the only clone mergebot ever makes.

Branches of the remote appear as `refs/remotes/origin/<branch>`, so "reachable from
`<remote>/<branch>`" is answered by plain git against fetched refs, never trusted from an event.
The heads GitHub keeps for pull requests (`refs/pull/<n>/head`, also for pull requests from
forks, whose branches are not in the repository) appear as `refs/remotes/origin/pull/<n>/head`:
a fork's candidate has the branch `pull/<n>/head`. A remote without such refs fetches nothing
for that refspec.
Blocking (GitPython runs git subprocesses): call from a thread in async code.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import git

from mergebot.config import REMOTE_NAME
from mergebot.git.credentials import CredentialSource, GitCredentials, credential_env, redact

FETCH_TIMEOUT_SECONDS = 300
FETCH_REFSPECS = (
    f"+refs/heads/*:refs/remotes/{REMOTE_NAME}/*",
    f"+refs/pull/*/head:refs/remotes/{REMOTE_NAME}/pull/*/head",
)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_PULL_HEAD = re.compile(r"pull/[0-9]+/head")


def remote_ref(branch: str) -> str:
    """The remote's ref of a branch as mergebot names it (`pull/<n>/head` is GitHub's ref of
    a pull request's head, not a branch)."""
    return f"refs/{branch}" if _PULL_HEAD.fullmatch(branch) else f"refs/heads/{branch}"


class GitError(RuntimeError):
    """A git command failed; the message never contains credentials."""


def git_env() -> dict[str, str]:
    """Environment for every git call: never prompt, never read the operator's global config."""
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": os.environ.get("MERGEBOT_GIT_NAME", "mergebot"),
        "GIT_AUTHOR_EMAIL": os.environ.get("MERGEBOT_GIT_EMAIL", "mergebot@localhost"),
        "GIT_COMMITTER_NAME": os.environ.get("MERGEBOT_GIT_NAME", "mergebot"),
        "GIT_COMMITTER_EMAIL": os.environ.get("MERGEBOT_GIT_EMAIL", "mergebot@localhost"),
    }


def mirror_path(data_dir: Path, repo: str) -> Path:
    return data_dir / "mirrors" / (_SAFE.sub("_", repo.replace("/", "__")) + ".git")


class Mirror:
    """The bare mirror of one repo. Thread-safe: one lock serializes fetches and ref reads."""

    def __init__(
        self, path: Path, remote_url: str, *, credentials: CredentialSource | None = None
    ) -> None:
        self.path = path
        self.remote_url = remote_url
        self.credentials = credentials
        # The secrets handed to git so far (kept in memory only), so `redact` removes them even
        # when the source has moved on to a newer token.
        self._handed: set[str] = set()
        self._lock = threading.RLock()
        self._repo: git.Repo | None = None
        # The config file as `ensure` last found it right (inode, size, mtime): unchanged since,
        # it needs no second read. Reading it costs GitPython's parser a millisecond or two,
        # and the processor ensures the mirror on every batch of every repo.
        self._config_checked: tuple[int, int, int] | None = None
        # Counts fetches through this object, so a reader of its refs knows when to read again.
        # (A fetch by another process into the same directory is not counted: a reader then
        # sees older tips, as if that fetch had not happened yet.)
        self.generation = 0

    def env(self) -> dict[str, str]:
        """The environment of every git call on this mirror (credentials included, if any).

        Called once per git command, so a `TokenSource` hands each command its current token."""
        return {**git_env(), **credential_env(self._current(), self.path.parent / ".askpass")}

    def _current(self) -> GitCredentials | None:
        if self.credentials is None:
            return None
        try:
            current = self.credentials.current()
        except Exception as exc:  # any failure to get a token fails the git call
            # The type only: a message of an HTTP library may quote a request with a secret.
            raise GitError(f"credentials for git unavailable: {type(exc).__name__}") from None
        self._handed.update(current.secrets())
        if len(self._handed) > 16:  # tokens rotate hourly: keep the recent ones only
            self._handed = set(current.secrets())
        return current

    def redact(self, text: str) -> str:
        """`text` without credentials: safe for logs, errors and notifications."""
        secrets = set(self._handed)
        if isinstance(self.credentials, GitCredentials):
            secrets.update(self.credentials.secrets())
        return redact(text, sorted(secrets))

    def execute(
        self,
        *args: str,
        timeout: float | None = None,
        strip: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str, str]:
        """Run `git <args>` (no shell; arguments are passed as they are) and return the exit
        status, stdout and stderr. Output is redacted; nothing is raised for a non-zero status.
        `env` adds to (or overrides) the mirror's environment for this one command."""
        status, out, err = self.repo.git.execute(
            ["git", *args],
            env={**self.env(), **(env or {})},
            kill_after_timeout=timeout,
            with_extended_output=True,
            with_exceptions=False,
            strip_newline_in_stdout=strip,
        )
        return int(status), self.redact(str(out)), self.redact(str(err))

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self.ensure()
        assert self._repo is not None
        return self._repo

    def run(self, *args: str, timeout: float | None = None) -> str:
        try:
            out = self.repo.git.execute(
                ["git", *args],
                env=self.env(),
                kill_after_timeout=timeout,
                with_extended_output=False,
            )
        except git.GitCommandError as exc:
            stderr = self.redact(str(exc.stderr or "").strip())
            raise GitError(f"git {args[0]} failed: {stderr[-1000:]}") from None
        return str(out)

    def ensure(self) -> None:
        """Create the bare mirror if needed and point it at the configured remote."""
        with self._lock:
            if self._repo is None:
                if not (self.path / "HEAD").exists():
                    self.path.mkdir(parents=True, exist_ok=True)
                    git.Repo.init(self.path, bare=True)
                self._repo = git.Repo(self.path)
            if self._config_checked is not None and self._config_checked == self._config_stat():
                return
            section = f'remote "{REMOTE_NAME}"'
            reader = self._repo.config_reader("repository")
            if reader.has_section(section) and (
                reader.has_option(section, "url")
                and reader.get_value(section, "url") == self.remote_url
                and reader.has_option(section, "fetch")
                and tuple(reader.get_values(section, "fetch")) == FETCH_REFSPECS
            ):
                self._config_checked = self._config_stat()
                return
            # Rewriting the config truncates the file for a moment: a git command reading it then
            # (a push from a worktree, another Mirror object on this path) finds no `origin`.
            # So it is written only when it has to change.
            with self._repo.config_writer() as cfg:
                cfg.set_value(section, "url", self.remote_url)
                if cfg.has_option(section, "fetch"):
                    cfg.remove_option(section, "fetch")
                for refspec in FETCH_REFSPECS:
                    cfg.add_value(section, "fetch", refspec)
            self._config_checked = self._config_stat()

    def _config_stat(self) -> tuple[int, int, int] | None:
        """What changes when the config file does: git and GitPython write it to a new file
        and rename that over it (a new inode), and an edit in place changes its size or time."""
        try:
            found = os.stat(self.path / "config")
        except OSError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def fetch(self) -> None:
        with self._lock:
            self.generation += 1
            self.run("fetch", "--prune", "--quiet", REMOTE_NAME, timeout=FETCH_TIMEOUT_SECONDS)

    def fetch_if_moved(self) -> dict[str, str] | None:
        """`fetch`, unless the remote's branches and pull request heads already are the
        mirror's: one `ls-remote` lists them for a fraction of what a fetch that finds nothing
        new costs (it checks and rewrites every ref: 0.30 s of CPU against 0.07 s for 3,000
        branches). Equal refs name commits the mirror has, since they came by a fetch. None
        when it fetched (at once when the mirror holds no branch yet: nothing to compare);
        otherwise the tips, as `remote_tips` gives them, so the caller need not read them again."""
        with self._lock:
            held = self.remote_tips()
            if held:
                listed = self.run("ls-remote", REMOTE_NAME, timeout=FETCH_TIMEOUT_SECONDS)
                remote: dict[str, str] = {}
                for line in listed.splitlines():
                    sha, _, ref = line.partition("\t")
                    if ref.startswith("refs/heads/"):
                        remote[ref.removeprefix("refs/heads/")] = sha
                    elif _PULL_HEAD.fullmatch(ref.removeprefix("refs/")):
                        remote[ref.removeprefix("refs/")] = sha
                if remote == held:
                    return held
            self.fetch()
            return None

    def fetch_branches(self, branches: Iterable[str]) -> None:
        """Bring just these branches up to date (deleted ones removed): one fetch whose ref
        listing the remote filters to them (protocol v2 ref prefixes), so it costs what is
        asked, not what the remote holds. Each is fetched as a `<branch>*` pattern, which may
        also update branches whose name extends it, and never fails for a missing branch."""
        specs = [
            f"+{remote_ref(branch)}*:refs/remotes/{REMOTE_NAME}/{branch}*"
            for branch in sorted(set(branches))
        ]
        if not specs:
            return
        with self._lock:
            self.generation += 1
            self.run(
                "fetch", "--prune", "--quiet", REMOTE_NAME, *specs, timeout=FETCH_TIMEOUT_SECONDS
            )

    def rev(self, ref: str) -> str | None:
        """The commit `ref` names, or None when it does not exist."""
        with self._lock:
            try:
                return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") or None
            except GitError:
                return None

    def remote_branch(self, branch: str) -> str | None:
        return self.rev(f"refs/remotes/{REMOTE_NAME}/{branch}")

    def has_commit(self, sha: str) -> bool:
        return self.rev(sha) is not None

    def is_ancestor(self, sha: str, ref: str) -> bool:
        """Is `sha` reachable from `ref`? False when either is unknown to the mirror.

        One git process: `merge-base --is-ancestor` answers 0 (yes), 1 (no), or an error
        status for an object it does not know."""
        with self._lock:
            status, _out, _err = self.execute("merge-base", "--is-ancestor", sha, ref)
            return status == 0

    def contained(self, tip: str, commits: Sequence[str]) -> list[str]:
        """Which of `commits` are reachable from `tip` (one process per distinct commit; a
        train has a handful)."""
        return [c for c in dict.fromkeys(commits) if c == tip or self.is_ancestor(c, tip)]

    def remote_tips(self) -> dict[str, str]:
        """Every fetched branch (and pull request head) -> its commit, read by one git process:
        what `origin/<branch>` questions are answered against for a whole batch."""
        prefix = f"refs/remotes/{REMOTE_NAME}/"
        with self._lock:
            out = self.run("for-each-ref", "--format=%(objectname) %(refname)", prefix)
        tips: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            if ref.startswith(prefix) and ref != f"{prefix}HEAD":
                tips[ref.removeprefix(prefix)] = sha
        return tips

    def ancestor(self, sha: str, descendant: str) -> bool:
        """Is commit `sha` reachable from commit `descendant`? One git process; False when
        either is unknown to the mirror."""
        with self._lock:
            status, _out, _err = self.execute("merge-base", "--is-ancestor", sha, descendant)
        return status == 0

    def commits(self, tip: str, *, exclude: str | None = None) -> list[str]:
        """The commits reachable from `tip` (and not from `exclude`), by one `rev-list`."""
        args = ["rev-list", tip] + ([f"^{exclude}"] if exclude else [])
        with self._lock:
            return self.run(*args, "--").split()

    def close(self) -> None:
        """Stop GitPython's cat-file helper processes (they outlive calls otherwise)."""
        with self._lock:
            if self._repo is not None:
                self._repo.close()
                self._repo = None
