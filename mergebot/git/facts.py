"""Readiness's questions to git, answered by the repo's mirror (the real `GitFacts`).

A batch costs what it holds, not what the repo ever held:

- **Fetch only when the remote moved.** The processor hands `snapshot` where the batch itself
  says branches are (`branch_pushed`, `finalize_ready`, the base after an
  `integration_completed`). A branch the mirror already shows there needs nothing; the others are
  brought up to date by one fetch limited to them (the remote lists only those refs). A batch
  that moves no branch (approvals, withdrawals...) fetches nothing. The first snapshot of a repo
  in a process and the periodic re-check (no claims) list the remote's refs (`ls-remote`) and
  fetch everything when any moved, so a change no event announced (a hand merge into base) is
  seen within a re-check period; a remote that did not move costs a listing, not a fetch.
- **Refs in one process.** Every `origin/*` tip is read by one `for-each-ref` after each fetch,
  so a candidate whose sha is its branch's tip (the usual case) costs no git process at all.
- **Ancestry cached by sha.** "Is a reachable from b" never changes for two given commits, so the
  answers are kept across batches, keyed by the shas (never by ref names).
- **"Already on base" in bulk.** The commits of `origin/<base>` are listed once by `rev-list` and
  then kept up to date by two `rev-list`s per move of the base tip (added, and removed after a
  force push): every candidate's question is a set lookup. Memory: one set of shas per base.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mergebot.config import REMOTE_NAME, RepoConfig
from mergebot.git.mirror import GitError, Mirror, mirror_path
from mergebot.readiness import GitFacts, GitFactsError

ZERO_SHA = "0" * 40
# Cached ancestry answers per repo; beyond it the cache starts over (answers are cheap to redo).
ANCESTRY_KEPT = 100_000


@dataclass
class KnownAnswers:
    """What git answered about one mirror, kept across snapshots (all keyed by commit shas)."""

    ancestry: dict[tuple[str, str], bool] = field(default_factory=dict)
    # branch -> (its tip, every commit reachable from that tip)
    commits_on: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class MirrorGitFacts:
    """GitFacts over a fetched mirror; blocking (git subprocesses), so call it from a thread."""

    def __init__(
        self,
        mirror: Mirror,
        tips: Mapping[str, str] | None = None,
        known: KnownAnswers | None = None,
    ) -> None:
        self.mirror = mirror
        self._tips = dict(tips) if tips is not None else None
        self.known = known or KnownAnswers()

    @property
    def tips(self) -> dict[str, str]:
        if self._tips is None:
            try:
                self._tips = self.mirror.remote_tips()
            except GitError as exc:
                raise GitFactsError(str(exc)) from None
        return self._tips

    def _ancestor(self, sha: str, descendant: str) -> bool:
        if sha == descendant:
            return True
        key = (sha, descendant)
        with self.known.lock:
            found = self.known.ancestry.get(key)
        if found is None:
            found = self.mirror.ancestor(sha, descendant)
            with self.known.lock:
                if len(self.known.ancestry) >= ANCESTRY_KEPT:
                    self.known.ancestry.clear()
                self.known.ancestry[key] = found
        return found

    def reachable(self, sha: str, branch: str) -> bool:
        tip = self.tips.get(branch)
        return tip is not None and self._ancestor(sha, tip)

    def on_base(self, sha: str, base: str) -> bool:
        tip = self.tips.get(base)
        if tip is None:
            return False
        if sha == tip:
            return True
        return sha in self._commits_on(base, tip)

    def _commits_on(self, branch: str, tip: str) -> frozenset[str]:
        with self.known.lock:
            held = self.known.commits_on.get(branch)
            if held is not None and held[0] == tip:
                return held[1]
            try:
                if held is None:
                    commits = frozenset(self.mirror.commits(tip))
                else:
                    old_tip, old = held
                    added = self.mirror.commits(tip, exclude=old_tip)
                    removed = self.mirror.commits(old_tip, exclude=tip)
                    commits = (old - frozenset(removed)) | frozenset(added)
            except GitError as exc:
                raise GitFactsError(str(exc)) from None
            self.known.commits_on[branch] = (tip, commits)
            return commits

    def tip(self, branch: str) -> str | None:
        return self.tips.get(branch)

    def descends(self, sha: str, ancestor: str) -> bool:
        return sha != ancestor and self._ancestor(ancestor, sha)


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


def unsettled(tips: Mapping[str, str], claims: Mapping[str, str]) -> set[str]:
    """The branches a batch puts somewhere (branch -> sha; the zero sha for a deleted branch)
    the mirror does not show them yet: what a fetch must bring."""
    return {
        branch
        for branch, sha in claims.items()
        if tips.get(branch) != (None if sha == ZERO_SHA else sha)
    }


class GitFactsSource(Protocol):
    async def snapshot(
        self, repo: str, config: RepoConfig, claims: Mapping[str, str] | None = None
    ) -> GitFacts:
        """Fresh answers for one batch of `repo`. `claims` are where the batch says branches
        are (branch -> sha): only those the mirror does not show yet are fetched. None: fetch
        every branch."""
        ...


class MirrorGitFactsSource:
    """Fetches each repo's mirror under the data dir when a snapshot needs it.

    `mirrors` is a shared registry (repo -> Mirror), so the integrator and the processor of one
    process use one Mirror object (and its lock) per repo instead of racing two fetches.
    """

    def __init__(self, data_dir: Path, mirrors: dict[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self.mirrors: dict[str, Any] = mirrors if mirrors is not None else {}
        self.known: dict[str, KnownAnswers] = {}
        # How many fetches of each kind were made (full, branches only): the bench reads them.
        self.fetches = {"full": 0, "branches": 0}
        # repo -> (the mirror's fetch generation, its tips then)
        self._tips_read: dict[str, tuple[int, dict[str, str]]] = {}

    def mirror(self, repo: str, remote: str) -> Mirror:
        found = self.mirrors.get(repo)
        if not isinstance(found, Mirror):
            found = Mirror(mirror_path(self.data_dir, repo), remote)
            self.mirrors[repo] = found
        return found

    async def snapshot(
        self, repo: str, config: RepoConfig, claims: Mapping[str, str] | None = None
    ) -> GitFacts:
        if not config.remote:
            return UnavailableGitFacts(f"no remote is configured for {repo}")
        mirror = self.mirror(repo, config.remote)
        try:
            tips = await asyncio.to_thread(self._tips, repo, mirror, claims)
        except GitError as exc:
            return UnavailableGitFacts(f"fetch from {REMOTE_NAME} failed: {exc}")
        return MirrorGitFacts(mirror, tips, self.known.setdefault(repo, KnownAnswers()))

    def _tips(self, repo: str, mirror: Mirror, claims: Mapping[str, str] | None) -> dict[str, str]:
        mirror.ensure()
        if claims is None or repo not in self._tips_read:
            # Everything, and at least once per process: the mirror may be days old.
            current = mirror.fetch_if_moved()
            if current is None:
                self.fetches["full"] += 1
            else:
                self._tips_read[repo] = (mirror.generation, current)
        else:
            branches = unsettled(self._read_tips(repo, mirror), claims)
            if branches:
                mirror.fetch_branches(branches)
                self.fetches["branches"] += 1
        return self._read_tips(repo, mirror)

    def _read_tips(self, repo: str, mirror: Mirror) -> dict[str, str]:
        """The mirror's tips, read again only after a fetch through it."""
        held = self._tips_read.get(repo)
        if held is None or held[0] != mirror.generation:
            held = (mirror.generation, mirror.remote_tips())
            self._tips_read[repo] = held
        return held[1]

    def close(self) -> None:
        for mirror in self.mirrors.values():
            if isinstance(mirror, Mirror):
                mirror.close()
