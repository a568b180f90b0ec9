"""Real git repositories for tests: a bare "remote" and a working clone that commits and pushes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


class GitRemote:
    """A bare repository standing in for the forge, plus a clone to make commits with."""

    def __init__(self, root: Path, name: str = "remote") -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        self.bare.mkdir(parents=True)
        git(self.bare, "init", "--bare", "--initial-branch=main", "-q")
        self.work.mkdir()
        git(self.work, "init", "--initial-branch=main", "-q")
        git(self.work, "remote", "add", "origin", str(self.bare))
        self.commit("README.md", "hello\n", "initial commit")
        git(self.work, "push", "-q", "origin", "main")

    @property
    def url(self) -> str:
        return str(self.bare)

    def checkout(self, branch: str, start: str = "main", *, create: bool = True) -> None:
        if create:
            git(self.work, "checkout", "-q", "-B", branch, f"origin/{start}")
        else:
            git(self.work, "checkout", "-q", branch)

    def commit(self, path: str, content: str, message: str) -> str:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        git(self.work, "add", path)
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def push(self, branch: str, *, force: bool = False) -> str:
        args = ["push", "-q", "origin", f"HEAD:refs/heads/{branch}"]
        if force:
            args.insert(1, "--force")
        git(self.work, *args)
        git(self.work, "fetch", "-q", "origin")
        return self.rev(branch)

    def branch_with(self, branch: str, path: str, content: str, start: str = "main") -> str:
        """Create `branch` from the remote's `start`, commit one file, push it; return its sha."""
        git(self.work, "fetch", "-q", "origin")
        self.checkout(branch, start)
        self.commit(path, content, f"{branch}: change {path}")
        return self.push(branch)

    def pull_request_head(self, number: int, path: str, content: str) -> str:
        """A commit that exists only as `refs/pull/<number>/head`, the ref GitHub keeps for a
        pull request from a fork (the fork's branch is not in this repository); its sha."""
        git(self.work, "fetch", "-q", "origin")
        git(self.work, "checkout", "-q", "--detach", "origin/main")
        sha = self.commit(path, content, f"fork: change {path}")
        git(self.work, "push", "-q", "origin", f"{sha}:refs/pull/{number}/head")
        return sha

    def rev(self, ref: str) -> str:
        return git(self.bare, "rev-parse", ref)

    def log(self, ref: str = "main") -> list[str]:
        return git(self.bare, "rev-list", "--first-parent", ref).splitlines()

    def parents(self, sha: str) -> list[str]:
        return git(self.bare, "rev-list", "--parents", "-n", "1", sha).split()[1:]

    def refs(self) -> dict[str, str]:
        out = git(self.bare, "for-each-ref", "--format=%(refname) %(objectname)")
        # "<refname> <sha>" per line: refname -> sha
        return dict(line.split(" ", 1) for line in out.splitlines())
