"""A GitFacts stand-in for tests about everything but git (the git tests use a real mirror)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mergebot.config import RepoConfig
from mergebot.readiness import GitFacts, GitFactsError


@dataclass
class FakeGit:
    """Every sha is reachable from its branch unless listed; `on_base` lists integrated shas."""

    unreachable: set[tuple[str, str]] = field(default_factory=set)
    on_base_shas: set[str] = field(default_factory=set)
    # (descendant, ancestor) pairs: what `descends` answers yes to.
    ancestry: set[tuple[str, str]] = field(default_factory=set)
    # branch -> sha of origin/<branch>; unknown branches have none.
    tips: dict[str, str] = field(default_factory=dict)
    broken: str | None = None
    snapshots: int = 0

    def reachable(self, sha: str, branch: str) -> bool:
        if self.broken:
            raise GitFactsError(self.broken)
        return (sha, branch) not in self.unreachable

    def on_base(self, sha: str, base: str) -> bool:
        if self.broken:
            raise GitFactsError(self.broken)
        return sha in self.on_base_shas

    def tip(self, branch: str) -> str | None:
        if self.broken:
            raise GitFactsError(self.broken)
        return self.tips.get(branch)

    def descends(self, sha: str, ancestor: str) -> bool:
        if self.broken:
            raise GitFactsError(self.broken)
        return (sha, ancestor) in self.ancestry

    async def snapshot(
        self, repo: str, config: RepoConfig, claims: Mapping[str, str] | None = None
    ) -> GitFacts:
        self.snapshots += 1
        return self
