"""The integration workspace on real repositories: builds, conflicts, methods, CAS pushes."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mergebot.config import MergeMethod
from mergebot.git.credentials import GitCredentials
from mergebot.git.merge import Candidate, PushStatus
from mergebot.git.mirror import GitError, Mirror, mirror_path
from mergebot.git.workspace import (
    AlreadyOnBase,
    Conflict,
    Integration,
    Workspace,
    worktrees_root,
)
from tests.gitutil import GitRemote, git

REPO = "acme/widgets"
PREFIX = "mergebot/integration/"


@pytest.fixture
def workspace(remote: GitRemote, tmp_path: Path) -> Iterator[Workspace]:
    data = tmp_path / "data"
    mirror = Mirror(mirror_path(data, REPO), remote.url)
    ws = Workspace(mirror, worktrees_root(data, REPO), prefix=PREFIX)
    try:
        yield ws
    finally:
        mirror.close()


def _build(
    ws: Workspace, cand: Candidate, method: MergeMethod = MergeMethod.MERGE, slot: int | None = None
) -> Integration:
    ws.fetch()
    result = ws.build(cand, "main", method, slot=slot)
    assert isinstance(result, Integration), result
    return result


# Every method builds the same commit alone (a throw-away worktree) and in a train's car slot.
ALONE_AND_IN_A_SLOT = pytest.mark.parametrize("slot", [None, 0], ids=["alone", "slot"])


def test_merge_builds_a_merge_commit_naming_slug_sha_and_approvers(
    remote: GitRemote, workspace: Workspace
) -> None:
    sha = remote.branch_with("feature/one", "one.txt", "1\n")
    base = remote.rev("main")
    built = _build(workspace, Candidate("pr-1", "feature/one", sha, ("alice", "bob")))

    assert built.base_sha == base
    assert built.branch == "mergebot/integration/pr-1"
    assert (built.worktree / "one.txt").read_text() == "1\n"
    parents = git(workspace.mirror.path, "rev-list", "--parents", "-n", "1", built.commit).split()
    assert parents[1:] == [base, sha]
    message = git(workspace.mirror.path, "log", "-1", "--format=%B", built.commit)
    assert message.startswith(f"Merge pr-1 ({sha[:7]}) into main")
    assert f"Mergebot-Sha: {sha}" in message
    assert "Approved-by: alice" in message
    assert "Approved-by: bob" in message
    assert workspace.mirror.rev(f"refs/heads/{built.branch}") == built.commit

    workspace.remove(built)
    assert not built.worktree.exists()
    assert workspace.mirror.rev(f"refs/heads/{built.branch}") is None
    assert remote.rev("main") == base  # building pushes nothing


@ALONE_AND_IN_A_SLOT
def test_conflict_lists_files_and_leaves_nothing_behind(
    remote: GitRemote, workspace: Workspace, slot: int | None
) -> None:
    sha = remote.branch_with("feature/c", "README.md", "theirs\n")
    remote.checkout("main", create=False)
    git(remote.work, "reset", "-q", "--hard", "origin/main")
    remote.commit("README.md", "ours\n", "main edits README")
    remote.push("main")
    before = remote.refs()

    for method in MergeMethod:
        workspace.fetch()
        result = workspace.build(Candidate("pr-2", "feature/c", sha), "main", method, slot=slot)
        assert isinstance(result, Conflict), method
        assert result.files == ("README.md",)
        if slot is not None and (workspace.root / "slot-0").exists():
            # The slot's worktree stays for the next car: clean, no merge or rebase under way.
            slot_tree = workspace.root / "slot-0"
            assert git(slot_tree, "status", "--porcelain") == "", method
            workspace.remove_slots()
    assert list(workspace.root.iterdir()) == []
    assert workspace.mirror.rev(f"refs/heads/{PREFIX}pr-2") is None
    assert remote.refs() == before


@ALONE_AND_IN_A_SLOT
def test_rebase_replays_the_candidate_commits_on_base(
    remote: GitRemote, workspace: Workspace, slot: int | None
) -> None:
    sha = remote.branch_with("feature/r", "r.txt", "r\n")
    remote.commit("r2.txt", "r2\n", "second commit")
    sha = remote.push("feature/r")
    other = remote.branch_with("other", "o.txt", "o\n")
    git(remote.work, "push", "-q", "origin", f"{other}:refs/heads/main")  # base moves on

    built = _build(workspace, Candidate("pr-3", "feature/r", sha), MergeMethod.REBASE, slot)
    history = git(workspace.mirror.path, "log", "--format=%s", f"{other}..{built.commit}")
    assert history.splitlines() == ["second commit", "feature/r: change r.txt"]
    assert git(workspace.mirror.path, "rev-list", "--merges", f"{other}..{built.commit}") == ""
    assert workspace.mirror.is_ancestor(other, built.commit)
    assert built.commit != sha


@ALONE_AND_IN_A_SLOT
def test_rebase_of_a_branch_already_on_top_of_base_is_the_candidate_itself(
    remote: GitRemote, workspace: Workspace, slot: int | None
) -> None:
    sha = remote.branch_with("feature/ff", "ff.txt", "ff\n")
    built = _build(workspace, Candidate("pr-4", "feature/ff", sha), MergeMethod.REBASE, slot)
    assert built.commit == sha


@ALONE_AND_IN_A_SLOT
def test_squash_makes_one_commit_by_the_candidate_author(
    remote: GitRemote, workspace: Workspace, slot: int | None
) -> None:
    remote.branch_with("feature/s", "s1.txt", "1\n")
    remote.commit("s2.txt", "2\n", "add s2")
    sha = remote.push("feature/s")
    base = remote.rev("main")

    cand = Candidate("pr-5", "feature/s", sha, ("carol",))
    built = _build(workspace, cand, MergeMethod.SQUASH, slot)
    mirror = workspace.mirror.path
    assert git(mirror, "rev-list", "--parents", "-n", "1", built.commit).split()[1:] == [base]
    assert git(mirror, "log", "-1", "--format=%an <%ae>", built.commit) == (
        "Test Author <author@example.com>"
    )
    message = git(mirror, "log", "-1", "--format=%B", built.commit)
    assert message.startswith(f"pr-5: squash feature/s ({sha[:7]}) into main")
    assert "* add s2" in message
    assert f"Mergebot-Sha: {sha}" in message
    assert git(mirror, "rev-parse", f"{built.commit}^{{tree}}") == git(
        mirror, "rev-parse", f"{sha}^{{tree}}"
    )


def test_candidate_already_on_base_builds_nothing(remote: GitRemote, workspace: Workspace) -> None:
    sha = remote.branch_with("feature/x", "x.txt", "x\n")
    git(remote.work, "push", "-q", "origin", f"{sha}:refs/heads/main")
    workspace.fetch()
    assert isinstance(
        workspace.build(Candidate("pr-6", "feature/x", sha), "main", MergeMethod.MERGE),
        AlreadyOnBase,
    )


def test_base_update_is_a_compare_and_swap_fast_forward(
    remote: GitRemote, workspace: Workspace
) -> None:
    sha = remote.branch_with("feature/one", "one.txt", "1\n")
    built = _build(workspace, Candidate("pr-1", "feature/one", sha))

    assert workspace.push_branch(built).status is PushStatus.OK
    assert remote.rev(f"refs/heads/{built.branch}") == built.commit

    # Someone else moves main after we built: the CAS refuses and main keeps their commit.
    theirs = remote.branch_with("hotfix", "hot.txt", "hot\n")
    git(remote.work, "push", "-q", "origin", f"{theirs}:refs/heads/main")
    stale = workspace.update_base("main", built.base_sha, built.commit)
    assert stale.status is PushStatus.STALE
    assert remote.rev("main") == theirs

    # From the exact old sha it goes through, as a fast-forward.
    git(remote.work, "push", "-q", "--force", "origin", f"{built.base_sha}:refs/heads/main")
    assert workspace.update_base("main", built.base_sha, built.commit).status is PushStatus.OK
    assert remote.rev("main") == built.commit

    assert workspace.delete_branch(built.branch)
    assert workspace.delete_branch(built.branch)  # already gone: still fine
    assert f"refs/heads/{built.branch}" not in remote.refs()


def test_base_update_refuses_a_commit_that_does_not_descend_from_base(
    remote: GitRemote, workspace: Workspace
) -> None:
    sha = remote.branch_with("feature/one", "one.txt", "1\n")
    workspace.fetch()
    unrelated = remote.branch_with("feature/two", "two.txt", "2\n")
    workspace.fetch()
    with pytest.raises(ValueError, match="does not descend"):
        workspace.update_base("main", sha, unrelated)
    with pytest.raises(ValueError, match="not an integration branch"):
        workspace.delete_branch("main")


def test_push_rejected_by_the_remote_is_not_mistaken_for_a_moved_base(
    remote: GitRemote, workspace: Workspace
) -> None:
    sha = remote.branch_with("feature/one", "one.txt", "1\n")
    built = _build(workspace, Candidate("pr-1", "feature/one", sha))
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = workspace.update_base("main", built.base_sha, built.commit)
    assert result.status is PushStatus.REJECTED
    assert remote.rev("main") == built.base_sha


def test_clean_stale_removes_leftover_worktrees_and_branches(
    remote: GitRemote, workspace: Workspace
) -> None:
    sha = remote.branch_with("feature/one", "one.txt", "1\n")
    built = _build(workspace, Candidate("pr-1", "feature/one", sha))
    # A crash here leaves the worktree and the local branch; the next run cleans them.
    assert workspace.clean_stale() == 1
    assert not built.worktree.exists()
    assert workspace.mirror.rev(f"refs/heads/{built.branch}") is None
    again = _build(workspace, Candidate("pr-1", "feature/one", sha))
    assert again.commit
    workspace.remove(again)


def test_untrusted_names_never_reach_a_shell(remote: GitRemote, workspace: Workspace) -> None:
    branch = "feature/$(touch${IFS}pwned)`touch${IFS}pwned2`;x"
    sha = remote.branch_with(branch, "n.txt", "n\n")
    built = _build(workspace, Candidate("pr-7", branch, sha))
    assert workspace.push_branch(built).status is PushStatus.OK
    message = git(workspace.mirror.path, "log", "-1", "--format=%B", built.commit)
    assert branch in message
    assert not list(Path.cwd().glob("pwned*"))
    assert not list(workspace.mirror.path.glob("pwned*"))


class _AuthRecorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        if auth is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        type(self).seen.append(auth)
        self.send_response(403)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def test_https_credentials_come_from_askpass_and_never_appear_in_errors(tmp_path: Path) -> None:
    _AuthRecorder.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _AuthRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = "ghs_" + "s3cr3t" * 4
    url = f"http://127.0.0.1:{server.server_address[1]}/acme/widgets.git"
    mirror = Mirror(
        tmp_path / "m.git", url, credentials=GitCredentials("x-access-token", SecretStr(token))
    )
    try:
        with pytest.raises(GitError) as caught:
            mirror.fetch()
    finally:
        server.shutdown()
        server.server_close()
        mirror.close()
    assert _AuthRecorder.seen, "git never sent credentials"
    sent = base64.b64decode(_AuthRecorder.seen[0].split()[1]).decode()
    assert sent == f"x-access-token:{token}"
    assert token not in str(caught.value)
    assert token not in (tmp_path / "m.git" / "config").read_text()


def test_a_token_in_the_remote_url_is_redacted_from_errors(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.git", "https://bot:tok3n-value@127.0.0.1:1/acme/widgets.git")
    try:
        with pytest.raises(GitError) as caught:
            mirror.fetch()
    finally:
        mirror.close()
    assert "tok3n-value" not in str(caught.value)


def test_a_car_slot_is_built_without_a_checkout_and_moved_from_car_to_car(
    remote: GitRemote, workspace: Workspace
) -> None:
    one = remote.branch_with("feature/one", "one.txt", "1\n")
    two = remote.branch_with("feature/two", "two.txt", "2\n")
    workspace.fetch()
    base = remote.rev("main")
    first = workspace.build(Candidate("pr-1", "feature/one", one, ("alice",)), "main",
                            MergeMethod.MERGE, slot=0)  # fmt: skip
    assert isinstance(first, Integration)
    parents = git(workspace.mirror.path, "rev-list", "--parents", "-n", "1", first.commit).split()
    assert parents[1:] == [base, one]
    message = git(workspace.mirror.path, "log", "-1", "--format=%B", first.commit)
    assert message.startswith(f"Merge pr-1 ({one[:7]}) into main")
    assert "Approved-by: alice" in message
    assert first.worktree == workspace.root / "slot-0"
    assert (first.worktree / "one.txt").read_text() == "1\n"
    (first.worktree / "left-behind.log").write_text("a check's output\n")
    # Car 2, stacked on car 1, in the same slot: moved there, nothing of the last check left.
    second = workspace.build(Candidate("pr-2", "feature/two", two), "main", MergeMethod.MERGE,
                             first.commit, slot=0)  # fmt: skip
    assert isinstance(second, Integration)
    assert second.base_sha == first.commit
    assert sorted(p.name for p in second.worktree.iterdir() if p.name != ".git") == [
        "README.md", "one.txt", "two.txt",
    ]  # fmt: skip
    # No check needs files: nothing is checked out at all.
    bare = workspace.build(Candidate("pr-2", "feature/two", two), "main", MergeMethod.MERGE,
                           slot=1, files=False)  # fmt: skip
    assert isinstance(bare, Integration)
    assert bare.worktree is None
    assert not (workspace.root / "slot-1").exists()
    workspace.remove_slots()
    assert list(workspace.root.iterdir()) == []
    assert remote.rev("main") == base  # building pushes nothing


def test_base_moves_and_the_landed_integration_branches_go_in_one_push(
    remote: GitRemote, workspace: Workspace
) -> None:
    sha = remote.branch_with("feature/one", "one.txt", "1\n")
    workspace.fetch()
    built = workspace.build(Candidate("pr-1", "feature/one", sha), "main", MergeMethod.MERGE,
                            slot=0, files=False)  # fmt: skip
    assert isinstance(built, Integration)
    assert workspace.push_branch(built).status is PushStatus.OK
    gone = f"{PREFIX}pr-9"  # never pushed: its deletion fails, base still moves
    result = workspace.update_base("main", built.base_sha, built.commit, [built.branch, gone])
    assert result.status is PushStatus.OK
    assert remote.rev("main") == built.commit
    assert f"refs/heads/{built.branch}" not in remote.refs()
    with pytest.raises(ValueError, match="not an integration branch"):
        workspace.update_base("main", built.base_sha, built.commit, ["main"])
