"""Readiness's questions to git, answered by the repo's mirror (the real `GitFacts`).

The processor asks for a snapshot once per batch: that fetches the mirror once, and the answers
are then memoized for the batch, so a batch of a hundred events costs one fetch, not a hundred.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from mergebot.config import REMOTE_NAME, RepoConfig
from mergebot.git.mirror import GitError, Mirror, mirror_path
from mergebot.readiness import GitFacts, GitFactsError


class MirrorGitFacts:
    """GitFacts over a fetched mirror; blocking (git subprocesses), so call it from a thread."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self._memo: dict[tuple[str, str], bool] = {}

    def _reachable_from(self, sha: str, branch: str) -> bool:
        key = (sha, branch)
        if key not in self._memo:
            try:
                self._memo[key] = self.mirror.is_ancestor(
                    sha, f"refs/remotes/{REMOTE_NAME}/{branch}"
                )
            except GitError as exc:
                raise GitFactsError(str(exc)) from None
        return self._memo[key]

    def reachable(self, sha: str, branch: str) -> bool:
        return self._reachable_from(sha, branch)

    def on_base(self, sha: str, base: str) -> bool:
        return self._reachable_from(sha, base)

    def tip(self, branch: str) -> str | None:
        return self.mirror.remote_branch(branch)

    def descends(self, sha: str, ancestor: str) -> bool:
        key = (ancestor, sha)
        if key not in self._memo:
            try:
                self._memo[key] = self.mirror.is_ancestor(ancestor, sha)
            except GitError as exc:
                raise GitFactsError(str(exc)) from None
        return self._memo[key]


class UnavailableGitFacts:
    """Every question fails with the same explanation (no remote, fetch failed…)."""

    def __init__(self, why: str) -> None:
        self.why = why

    def reachable(self, sha: str, branch: str) -> bool:
        raise GitFactsError(self.why)

    def on_base(self, sha: str, base: str) -> bool:
        raise GitFactsError(self.why)

    def descends(self, sha: str, ancestor: str) -> bool:
        raise GitFactsError(self.why)

    def tip(self, branch: str) -> str | None:
        raise GitFactsError(self.why)


class GitFactsSource(Protocol):
    async def snapshot(self, repo: str, config: RepoConfig) -> GitFacts:
        """Fresh answers for one batch of `repo` (fetching whatever is needed first)."""
        ...


class MirrorGitFactsSource:
    """Fetches each repo's mirror under the data dir once per snapshot.

    `mirrors` is a shared registry (repo -> Mirror), so the integrator and the processor of one
    process use one Mirror object (and its lock) per repo instead of racing two fetches.
    """

    def __init__(self, data_dir: Path, mirrors: dict[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self.mirrors: dict[str, Any] = mirrors if mirrors is not None else {}

    def mirror(self, repo: str, remote: str) -> Mirror:
        found = self.mirrors.get(repo)
        if not isinstance(found, Mirror):
            found = Mirror(mirror_path(self.data_dir, repo), remote)
            self.mirrors[repo] = found
        return found

    async def snapshot(self, repo: str, config: RepoConfig) -> GitFacts:
        if not config.remote:
            return UnavailableGitFacts(f"no remote is configured for {repo}")
        mirror = self.mirror(repo, config.remote)
        try:
            await asyncio.to_thread(mirror.ensure)
            await asyncio.to_thread(mirror.fetch)
        except GitError as exc:
            return UnavailableGitFacts(f"fetch from {REMOTE_NAME} failed: {exc}")
        return MirrorGitFacts(mirror)

    def close(self) -> None:
        for mirror in self.mirrors.values():
            if isinstance(mirror, Mirror):
                mirror.close()
