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


def _branches(remote: GitRemote) -> dict[str, str]:
    """The remote's branches and pull request heads as a mirror names them."""
    return {
        ref.removeprefix("refs/heads/").removeprefix("refs/"): sha
        for ref, sha in remote.refs().items()
    }


def test_a_mirror_fetches_again_only_when_the_remote_moved(
    remote: GitRemote, tmp_path: Path
) -> None:
    remote.branch_with("gone", "g.txt", "g\n")
    fork = remote.pull_request_head(3, "fork.txt", "from a fork\n")
    mirror = Mirror(tmp_path / "m.git", remote.url)
    try:
        assert mirror.fetch_if_moved() is None  # an empty mirror: fetched at once
        assert mirror.remote_branch("pull/3/head") == fork
        generation = mirror.generation
        # Nothing moved: listed, not fetched, and the tips handed back.
        assert mirror.fetch_if_moved() == mirror.remote_tips() == _branches(remote)
        assert mirror.generation == generation

        moved = remote.branch_with("feature/y", "y.txt", "y\n")
        assert mirror.fetch_if_moved() is None
        assert mirror.remote_branch("feature/y") == moved
        assert mirror.generation == generation + 1  # readers of its refs read them again

        git(remote.work, "push", "-q", "origin", ":gone")
        assert mirror.fetch_if_moved() is None
        assert mirror.remote_branch("gone") is None
        assert mirror.fetch_if_moved() == _branches(remote)
    finally:
        mirror.close()


def test_mirror_fetches_pull_request_heads_of_forks(remote: GitRemote, tmp_path: Path) -> None:
    fork = remote.pull_request_head(7, "fork.txt", "from a fork\n")
    assert git(remote.bare, "for-each-ref", "refs/heads/", "--format=%(refname)") == (
        "refs/heads/main"
    )  # the fork's commit is on no branch of the repository
    mirror = Mirror(tmp_path / "m.git", remote.url)
    try:
        mirror.fetch()
        assert mirror.remote_branch("pull/7/head") == fork
        assert mirror.is_ancestor(fork, "refs/remotes/origin/pull/7/head")
        assert not mirror.is_ancestor(fork, "refs/remotes/origin/main")
        assert mirror.remote_branch("main") == remote.rev("main")
    finally:
        mirror.close()


def test_a_mirror_made_before_pull_heads_were_fetched_learns_them(
    remote: GitRemote, tmp_path: Path
) -> None:
    path = tmp_path / "m.git"
    git(tmp_path, "init", "-q", "--bare", str(path))
    git(path, "remote", "add", "origin", remote.url)  # only +refs/heads/*:refs/remotes/origin/*
    fork = remote.pull_request_head(7, "fork.txt", "x\n")
    mirror = Mirror(path, remote.url)
    try:
        mirror.fetch()
        assert mirror.remote_branch("pull/7/head") == fork
        assert git(path, "config", "--get-all", "remote.origin.fetch").splitlines() == [
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/pull/*/head:refs/remotes/origin/pull/*/head",
        ]
    finally:
        mirror.close()


def test_a_mirror_whose_remote_was_changed_behind_its_back_points_at_its_own_again(
    remote: GitRemote, tmp_path: Path
) -> None:
    """`ensure` reads the config once and then only when the file changed; a change by someone
    else (an operator's `git remote set-url`, another process) is still put right."""
    path = tmp_path / "m.git"
    mirror = Mirror(path, remote.url)
    try:
        mirror.fetch()
        mirror.ensure()  # unchanged: nothing to read again
        git(path, "remote", "set-url", "origin", str(tmp_path / "elsewhere.git"))
        mirror.ensure()
        assert git(path, "config", "--get", "remote.origin.url").strip() == remote.url
        feature = remote.branch_with("feature/z", "z.txt", "z\n")
        mirror.fetch()
        assert mirror.remote_branch("feature/z") == feature
    finally:
        mirror.close()
