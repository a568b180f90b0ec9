"""The per-repo mirror answers reachability questions with real git."""

from __future__ import annotations

from pathlib import Path

from mergebot.git.mirror import Mirror, mirror_path
from tests.gitutil import GitRemote, git


def test_mirror_sees_remote_branches_and_reachability(remote: GitRemote, tmp_path: Path) -> None:
    feature = remote.branch_with("feature/x", "x.txt", "x\n")
    mirror = Mirror(mirror_path(tmp_path / "data", "acme/widgets"), remote.url)
    mirror.fetch()
    try:
        assert mirror.remote_branch("main") == remote.rev("main")
        assert mirror.remote_branch("feature/x") == feature
        assert mirror.is_ancestor(feature, "refs/remotes/origin/feature/x")
        assert not mirror.is_ancestor(feature, "refs/remotes/origin/main")
        assert mirror.is_ancestor(remote.rev("main"), "refs/remotes/origin/feature/x")
        assert not mirror.is_ancestor("f" * 40, "refs/remotes/origin/main")
        assert mirror.remote_branch("nope") is None
    finally:
        mirror.close()


def test_mirror_fetch_prunes_deleted_branches(remote: GitRemote, tmp_path: Path) -> None:
    remote.branch_with("gone", "g.txt", "g\n")
    mirror = Mirror(tmp_path / "m.git", remote.url)
    mirror.fetch()
    git(remote.work, "push", "-q", "origin", ":gone")
    mirror.fetch()
    assert mirror.remote_branch("gone") is None
    mirror.close()
