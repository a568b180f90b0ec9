"""Integration workspaces: a fresh worktree of the repo's mirror for every candidate.

The mirror (`mirror.py`) is the only clone; each candidate gets a throw-away `git worktree` of it
under `<data dir>/worktrees/<repo>/`, detached at the latest `origin/<base>`, where the candidate is
merged, rebased or squashed. The result is recorded locally as `refs/heads/<prefix><slug>` and
pushed (live mode) to the same name on the remote. Worktrees are removed after each candidate, and
whatever a crash left behind is removed by `clean_stale` before the next drain.

Moving the base branch is a compare-and-swap push: `--force-with-lease=refs/heads/<base>:<old>`
makes the remote accept the update only while base is exactly `<old>` (receive-pack checks the old
value under the ref lock), and `update_base` refuses to push a commit that does not descend from
`<old>`, so the update is also a fast-forward. (A lease alone would allow a non-fast-forward: git
treats a matching lease as permission to force; the ancestry check is what forbids it.)

Untrusted names (slugs, branches) are validated at the edge and reach git only as separate argv
elements, never through a shell. Everything here blocks: call it from a thread in async code.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mergebot.config import REMOTE_NAME, MergeMethod
from mergebot.git.merge import (
    Candidate,
    PushResult,
    PushStatus,
    classify_push,
    commit_message,
    conflict_files,
)
from mergebot.git.mirror import GitError, Mirror

log = logging.getLogger("mergebot.git.workspace")

GIT_TIMEOUT_SECONDS = 300
PUSH_TIMEOUT_SECONDS = 300
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Settings of the operator's own git config that would change what mergebot writes.
_PINNED_CONFIG = (
    "-c", "commit.gpgsign=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "rebase.autoStash=false",
    "-c", "merge.conflictStyle=merge",
)  # fmt: skip


@dataclass(frozen=True)
class Integration:
    """A built integration commit, checked out in its own worktree."""

    base: str
    base_sha: str
    commit: str
    branch: str  # the integration branch name, `<prefix><slug>`
    worktree: Path | None  # where it is checked out; None: nowhere (no check needs files)
    method: MergeMethod
    slot: bool = False  # built for a car slot: no local branch, the worktree is kept


@dataclass(frozen=True)
class Conflict:
    """The candidate does not merge cleanly onto base; nothing was kept or pushed."""

    base_sha: str
    files: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class AlreadyOnBase:
    """The candidate adds nothing to base (its sha, or all of its changes, are there already)."""

    base_sha: str


BuildResult = Integration | Conflict | AlreadyOnBase


def worktrees_root(data_dir: Path, repo: str) -> Path:
    return data_dir / "worktrees" / _SAFE.sub("_", repo.replace("/", "__"))


class Workspace:
    """Integration work for one repo, on top of its mirror."""

    def __init__(self, mirror: Mirror, root: Path, *, prefix: str) -> None:
        self.mirror = mirror
        self.root = root.resolve()  # git runs with the mirror as its cwd: paths must be absolute
        self.prefix = prefix

    # -- plumbing ------------------------------------------------------------------------------
    def _git(
        self,
        *args: str,
        timeout: float = GIT_TIMEOUT_SECONDS,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str, str]:
        return self.mirror.execute(*_PINNED_CONFIG, *args, timeout=timeout, env=env)

    def _check(
        self,
        *args: str,
        timeout: float = GIT_TIMEOUT_SECONDS,
        env: Mapping[str, str] | None = None,
    ) -> str:
        status, out, err = self._git(*args, timeout=timeout, env=env)
        if status != 0:
            what = args[2] if args[0] == "-C" else args[0]
            raise GitError(f"git {what} failed: {(err or out).strip()[-1000:]}")
        return out

    def _in(self, worktree: Path, *args: str) -> tuple[int, str, str]:
        return self._git("-C", str(worktree), *args)

    def branch_name(self, slug: str) -> str:
        return f"{self.prefix}{slug}"

    # -- life cycle ----------------------------------------------------------------------------
    def fetch(self) -> None:
        self.mirror.fetch()

    def base_sha(self, base: str) -> str | None:
        return self.mirror.remote_branch(base)

    def clean_stale(self) -> int:
        """Remove every worktree and local integration branch a previous run left behind."""
        removed = 0
        if self.root.exists():
            for path in sorted(self.root.iterdir()):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        self.mirror.ensure()
        self._git("worktree", "prune")
        for ref in self._local_integration_refs():
            self._git("update-ref", "-d", ref)
        if removed:
            log.info("stale_worktrees_removed count=%d root=%s", removed, self.root)
        return removed

    def _local_integration_refs(self) -> list[str]:
        out = self._check("for-each-ref", "--format=%(refname)", f"refs/heads/{self.prefix}")
        return [line for line in out.splitlines() if line]

    def remote_integration_branches(self) -> list[str]:
        """Integration branches present on the remote at the last fetch (names without prefix
        `refs/heads/`)."""
        scope = f"refs/remotes/{REMOTE_NAME}/"
        out = self._check("for-each-ref", "--format=%(refname)", f"{scope}{self.prefix}")
        return [line[len(scope) :] for line in out.splitlines() if line]

    def remove(self, integration: Integration) -> None:
        """Drop the worktree and the local integration branch (idempotent). A car slot's
        worktree stays for the next car (it is moved, not rebuilt)."""
        if integration.slot or integration.worktree is None:
            return
        self._git("worktree", "remove", "--force", str(integration.worktree))
        if integration.worktree.exists():
            shutil.rmtree(integration.worktree, ignore_errors=True)
            self._git("worktree", "prune")
        self._git("update-ref", "-d", f"refs/heads/{integration.branch}")

    def checkout(self, sha: str, name: str) -> Path:
        """A throw-away detached worktree at `sha` (the clearance commands of a base tip run in
        it); `discard` removes it."""
        self.root.mkdir(parents=True, exist_ok=True)
        worktree = self.root / f"{name}-{uuid.uuid4().hex[:8]}"
        self._check("worktree", "add", "--detach", "--quiet", str(worktree), sha)
        return worktree

    def discard(self, worktree: Path) -> None:
        self._discard(worktree)

    # -- building ------------------------------------------------------------------------------
    def build(
        self,
        candidate: Candidate,
        base: str,
        method: MergeMethod,
        parent: str | None = None,
        *,
        slot: int | None = None,
        files: bool = True,
    ) -> BuildResult:
        """Build the integration commit of `candidate` on `parent` (in a train: the commit of
        the car before it), or on the mirror's current `origin/<base>` (fetch first). A conflict
        leaves nothing behind; `AlreadyOnBase` means the candidate adds nothing to `parent`.

        With a car `slot`, a merge or a squash is written without any checkout (`merge-tree
        --write-tree` + `commit-tree`, no local branch) and, when a check command needs files,
        checked out in the slot's worktree, which is moved from car to car instead of being
        added and removed each time (in a big repo a full `worktree add`/`remove` is most of
        the git time); a rebase, which needs a checkout, runs in the slot's worktree."""
        base_sha = parent or self.base_sha(base)
        if base_sha is None:
            raise GitError(f"base branch {base!r} does not exist on the remote")
        if slot is not None:
            return self._build_for_slot(candidate, base, base_sha, method, slot=slot, files=files)
        if not self.mirror.has_commit(candidate.sha):
            raise GitError(f"commit {candidate.sha} is not on the remote")
        if self.mirror.is_ancestor(candidate.sha, base_sha):
            return AlreadyOnBase(base_sha)
        self.root.mkdir(parents=True, exist_ok=True)
        worktree = self.root / f"{candidate.slug}-{uuid.uuid4().hex[:8]}"
        self._check("worktree", "add", "--detach", "--quiet", str(worktree), base_sha)
        try:
            result = self._build_in(worktree, candidate, base, base_sha, method)
        except BaseException:
            self._discard(worktree)
            raise
        if not isinstance(result, Integration):
            self._discard(worktree)
            return result
        self._check("update-ref", f"refs/heads/{result.branch}", result.commit)
        return result

    def build_batch(
        self,
        candidates: Sequence[Candidate],
        base: str,
        method: MergeMethod,
        parent: str,
        *,
        slot: int | None = None,
        files: bool = True,
    ) -> BuildResult:
        """One integration commit for a batch: each candidate merged (squashed, rebased) in
        order onto the result of the one before, starting at `parent`, exactly as each would be
        alone. Named after the first candidate's integration branch; checked out (when a check
        needs files) only at the end. A conflict names the candidate that conflicted;
        `AlreadyOnBase` when no candidate adds anything."""
        if len(candidates) == 1:
            return self.build(candidates[0], base, method, parent, slot=slot, files=files)
        at = parent
        last: Integration | None = None
        for index, candidate in enumerate(candidates):
            final = index == len(candidates) - 1
            result = self.build(candidate, base, method, at, slot=slot, files=files and final)
            if isinstance(result, Conflict):
                if last is not None:
                    self.remove(last)
                message = f"{candidate.slug}: {result.message}"
                return Conflict(result.base_sha, result.files, message)
            if isinstance(result, AlreadyOnBase):
                continue
            if last is not None:
                self.remove(last)
            last, at = result, result.commit
        if last is None:
            return AlreadyOnBase(parent)
        if last.worktree is None and files and slot is not None:
            last = replace(last, worktree=self.checkout_slot(slot, last.commit))
        branch = self.branch_name(candidates[0].slug)
        if not last.slot and branch != last.branch:
            self._check("update-ref", f"refs/heads/{branch}", last.commit)
            self._check("update-ref", "-d", f"refs/heads/{last.branch}")
        return replace(last, base_sha=parent, branch=branch)

    def _build_for_slot(
        self,
        candidate: Candidate,
        base: str,
        base_sha: str,
        method: MergeMethod,
        *,
        slot: int,
        files: bool,
    ) -> BuildResult:
        if self.mirror.is_ancestor(candidate.sha, base_sha):
            return AlreadyOnBase(base_sha)
        if method is MergeMethod.REBASE:
            result = self._build_in(
                self.checkout_slot(slot, candidate.sha), candidate, base, base_sha, method
            )
            if isinstance(result, Integration):
                return replace(result, slot=True)
            return result
        status, out, err = self._git(
            "merge-tree", "--write-tree", "--name-only", "--no-messages", base_sha, candidate.sha
        )
        if status == 1:
            clash = conflict_files(out) or ["<unknown>"]
            return Conflict(base_sha, tuple(clash), "merge conflict in " + ", ".join(clash))
        if status != 0:
            raise GitError(f"git merge-tree failed: {(err or out).strip()[-1000:]}")
        tree = out.splitlines()[0].strip()
        if method is MergeMethod.SQUASH:
            commit = self._squash_commit(candidate, base, base_sha, tree)
        else:
            message = commit_message(candidate, base, MergeMethod.MERGE)
            commit = self._check(
                "commit-tree", tree, "-p", base_sha, "-p", candidate.sha, "-m", message
            ).strip()
        worktree = self.checkout_slot(slot, commit) if files else None
        branch = self.branch_name(candidate.slug)
        return Integration(base, base_sha, commit, branch, worktree, method, slot=True)

    def _squash_commit(self, candidate: Candidate, base: str, base_sha: str, tree: str) -> str:
        """The squash of `candidate` onto `base_sha` as one commit of `tree` (a squash's tree
        is the merge's), by the candidate's author, as `_squash` writes it in a worktree."""
        subjects, author = self._squash_text(candidate, base_sha)
        name, _, email = author.partition("\0")
        message = commit_message(candidate, base, MergeMethod.SQUASH, subjects)
        return self._check(
            "commit-tree", tree, "-p", base_sha, "-m", message,
            env={"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email},
        ).strip()  # fmt: skip

    def _squash_text(self, candidate: Candidate, base_sha: str) -> tuple[list[str], str]:
        """The candidate's own commit subjects since `base_sha`, and its author as
        `name NUL email`."""
        subjects = self._check(
            "log", "--reverse", "--format=%s", f"{base_sha}..{candidate.sha}"
        ).splitlines()
        return subjects, self._check("log", "-1", "--format=%an%x00%ae", candidate.sha)

    def checkout_slot(self, slot: int, commit: str) -> Path:
        """Car slot `slot`'s worktree, at exactly `commit` (tracked files updated incrementally,
        anything else the last check left removed); created the first time."""
        path = self.root / f"slot-{slot}"
        if (path / ".git").exists():
            self._check("-C", str(path), "checkout", "--quiet", "--force", "--detach", commit)
            self._check("-C", str(path), "clean", "-ffdxq")
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            self._git("worktree", "prune")
        self._check("worktree", "add", "--detach", "--quiet", str(path), commit)
        return path

    def remove_slots(self) -> None:
        """Drop every car slot's worktree (when the train stops: a slot lives for a drain)."""
        if not self.root.exists():
            return
        slots = sorted(self.root.glob("slot-*"))
        for path in slots:
            self._git("worktree", "remove", "--force", str(path))
            shutil.rmtree(path, ignore_errors=True)
        if slots:
            self._git("worktree", "prune")

    def _discard(self, worktree: Path) -> None:
        self._git("worktree", "remove", "--force", str(worktree))
        shutil.rmtree(worktree, ignore_errors=True)
        self._git("worktree", "prune")

    def _build_in(
        self, worktree: Path, candidate: Candidate, base: str, base_sha: str, method: MergeMethod
    ) -> BuildResult:
        if method is MergeMethod.REBASE:
            status, out, err = self._rebase(worktree, candidate.sha, base_sha)
            abort = ("rebase", "--abort")
        else:
            clash = self.precheck(base_sha, candidate.sha)
            if clash:
                return Conflict(base_sha, tuple(clash), "merge conflict in " + ", ".join(clash))
            if method is MergeMethod.SQUASH:
                status, out, err = self._squash(worktree, candidate, base, base_sha)
            else:
                message = commit_message(candidate, base, MergeMethod.MERGE)
                status, out, err = self._in(
                    worktree, "merge", "--no-ff", "--no-edit", "-m", message, candidate.sha
                )
            abort = ("merge", "--abort")
        if status != 0:
            _, unmerged, _ = self._in(worktree, "diff", "--name-only", "--diff-filter=U")
            self._in(worktree, *abort)
            files = tuple(dict.fromkeys(line for line in unmerged.splitlines() if line))
            detail = (err or out).strip()[-1000:]
            return Conflict(base_sha, files, detail or f"git {abort[0]} failed")
        head = self._check("-C", str(worktree), "rev-parse", "HEAD")
        if head == base_sha:
            return AlreadyOnBase(base_sha)
        return Integration(base, base_sha, head, self.branch_name(candidate.slug), worktree, method)

    def precheck(self, base_sha: str, sha: str) -> list[str]:
        """Files that conflict when merging `sha` into `base_sha` (empty: merges cleanly).
        `git merge-tree --write-tree` needs no checkout and takes milliseconds."""
        status, out, err = self._git(
            "merge-tree", "--write-tree", "--name-only", "--no-messages", base_sha, sha
        )
        if status == 0:
            return []
        if status == 1:
            return conflict_files(out) or ["<unknown>"]
        raise GitError(f"git merge-tree failed: {err.strip()[-1000:]}")

    def _squash(
        self, worktree: Path, candidate: Candidate, base: str, base_sha: str
    ) -> tuple[int, str, str]:
        status, out, err = self._in(worktree, "merge", "--squash", "--no-commit", candidate.sha)
        if status != 0:
            return status, out, err
        subjects, author = self._squash_text(candidate, base_sha)
        name, _, email = author.partition("\0")
        message = commit_message(candidate, base, MergeMethod.SQUASH, subjects)
        return self._in(
            worktree, "commit", "--allow-empty", "--no-verify",
            f"--author={name} <{email}>", "-m", message,
        )  # fmt: skip

    def _rebase(self, worktree: Path, sha: str, base_sha: str) -> tuple[int, str, str]:
        status, out, err = self._in(worktree, "checkout", "--quiet", "--detach", sha)
        if status != 0:
            return status, out, err
        return self._in(worktree, "rebase", "--no-autosquash", "--no-verify", base_sha)

    # -- talking to the remote -----------------------------------------------------------------
    def push_branch(self, integration: Integration) -> PushResult:
        """Publish the integration branch (forced: it is mergebot's own scratch branch).

        A remote that refuses every non-fast-forward (`receive.denyNonFastForwards`, branch
        protection rules) refuses to replace an older integration branch: then the old one is
        deleted first and the push repeated."""
        refspec = f"+{integration.commit}:refs/heads/{integration.branch}"
        result = classify_push(
            *self._git("push", "--porcelain", REMOTE_NAME, refspec, timeout=PUSH_TIMEOUT_SECONDS)
        )
        if result.status is PushStatus.OK or "non-fast-forward" not in result.message:
            return result
        self.delete_branch(integration.branch)
        return classify_push(
            *self._git("push", "--porcelain", REMOTE_NAME, refspec, timeout=PUSH_TIMEOUT_SECONDS)
        )

    def update_base(self, base: str, old: str, new: str, delete: Sequence[str] = ()) -> PushResult:
        """Move `base` on the remote from exactly `old` to `new` (a descendant of `old`), and
        delete the integration branches `delete` in the same push (one round trip; a branch
        that is already gone does not make the base update fail)."""
        if not self.mirror.is_ancestor(old, new):
            raise ValueError(f"refusing to move {base} to {new}: it does not descend from {old}")
        ref = f"refs/heads/{base}"
        for branch in delete:
            if not branch.startswith(self.prefix):
                raise ValueError(f"refusing to delete {branch!r}: not an integration branch")
        status, out, err = self._git(
            "push",
            "--porcelain",
            f"--force-with-lease={ref}:{old}",
            REMOTE_NAME,
            f"{new}:{ref}",
            *(f":refs/heads/{branch}" for branch in delete),
            timeout=PUSH_TIMEOUT_SECONDS,
        )
        if status != 0 and delete and _ref_updated(out, ref):
            log.info("integration_branches_not_all_deleted error=%s", err.strip()[-300:])
            return PushResult(PushStatus.OK)
        return classify_push(status, out, err)

    def delete_branch(self, branch: str) -> bool:
        """Delete an integration branch on the remote; False when that failed (logged)."""
        if not branch.startswith(self.prefix):
            raise ValueError(f"refusing to delete {branch!r}: not an integration branch")
        status, _out, err = self._git(
            "push", "--porcelain", REMOTE_NAME, f":refs/heads/{branch}",
            timeout=PUSH_TIMEOUT_SECONDS,
        )  # fmt: skip
        if status != 0 and "remote ref does not exist" not in err:
            log.warning("integration_branch_not_deleted branch=%s error=%s", branch, err[-300:])
            return False
        return True


def _ref_updated(porcelain: str, ref: str) -> bool:
    """Did `git push --porcelain` update `ref`? (`<flag>\t<from>:<to>\t<summary>`; `!` is a
    rejection.)"""
    for line in porcelain.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].endswith(f":{ref}"):
            return not line.startswith("!")
    return False
