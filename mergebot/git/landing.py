"""Where a candidate reached base when people merged it by hand, asked of real git.

Shadow mode compares mergebot's decisions with what people did, and people merge in every way a
forge allows: a merge commit or a fast-forward keep the candidate's sha (its commit is on base),
a squash or a rebase makes new commits with the same change (only its content is on base). Both
are recognised here, the second by `git patch-id --stable`: the candidate's whole change (from
where it forked off base) against each base commit's change from its first parent (so a merge
commit counts as the change it brought), or every one of the candidate's own commits found on
base (a rebase merge). Blocking (git subprocesses): call from a thread.
"""

from __future__ import annotations

import os
import subprocess

from mergebot.config import REMOTE_NAME
from mergebot.cutover import Landing
from mergebot.git.mirror import GitError, Mirror, git_env

PATCH_ID_TIMEOUT_SECONDS = 120


def _patch_ids(mirror: Mirror, *args: str) -> list[tuple[str, str]]:
    """`(patch id, commit)` of each change `git <args>` prints as a patch, in its order."""
    status, patch, err = mirror.execute(*args, strip=False, timeout=PATCH_ID_TIMEOUT_SECONDS)
    if status != 0:
        raise GitError(f"git {args[0]} failed: {err.strip()[-500:]}")
    if not patch.strip():
        return []
    env = {"PATH": os.environ.get("PATH", ""), **git_env()}
    found = subprocess.run(
        ["git", "patch-id", "--stable"],
        input=patch,
        capture_output=True,
        text=True,
        cwd=mirror.path,
        env=env,
        timeout=PATCH_ID_TIMEOUT_SECONDS,
        check=False,
    )
    if found.returncode != 0:
        raise GitError(f"git patch-id failed: {found.stderr.strip()[-500:]}")
    pairs = []
    for line in found.stdout.splitlines():
        patch_id, _, commit = line.partition(" ")
        pairs.append((patch_id, commit))
    return pairs


def _first_landing(mirror: Mirror, sha: str, base_ref: str) -> str:
    """The base commit through which `sha` came onto base: `sha` itself when it is on base's
    first-parent line (a fast-forward), else the oldest merge commit that descends from it (the
    merge that brought it), else `sha`."""
    line = mirror.run("rev-list", "--first-parent", f"{sha}..{base_ref}").split()
    if not line or mirror.rev(f"{line[-1]}^1") == sha:
        return sha
    merges = mirror.run(
        "rev-list", "--topo-order", "--reverse", "--ancestry-path", "--merges", f"{sha}..{base_ref}"
    ).split()
    return merges[0] if merges else sha


def find_landing(mirror: Mirror, sha: str, base: str) -> Landing | None:
    """Where `sha` (or an equivalent change) is on `origin/<base>` of the fetched mirror; None
    when it is not there (or the mirror does not know the commit)."""
    base_ref = f"refs/remotes/{REMOTE_NAME}/{base}"
    if mirror.rev(base_ref) is None or not mirror.has_commit(sha):
        return None
    if mirror.is_ancestor(sha, base_ref):
        return Landing(_first_landing(mirror, sha, base_ref), "sha")
    fork = mirror.run("merge-base", sha, base_ref).strip()
    if not fork:
        return None
    # Base's changes since the candidate forked off, each from its first parent, oldest first
    # (every commit, not only the first-parent line: a branch fast-forwarded onto base after it
    # merged base in puts base's own earlier line on a second parent).
    on_base = _patch_ids(
        mirror, "log", "--reverse", "--topo-order", "--diff-merges=first-parent", "-p",
        f"{fork}..{base_ref}",
    )  # fmt: skip
    if not on_base:
        return None
    where = dict(on_base)  # a change found twice: its latest commit
    whole = _patch_ids(mirror, "diff", fork, sha)
    if whole and whole[0][0] in where:
        return Landing(where[whole[0][0]], "content")
    own = _patch_ids(mirror, "log", "--reverse", "--no-merges", "-p", f"{fork}..{sha}")
    if own and all(patch_id in where for patch_id, _ in own):
        order = [commit for _, commit in on_base]
        return Landing(max((where[p] for p, _ in own), key=order.index), "content")
    return None
