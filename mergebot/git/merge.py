"""Pure helpers of the integration workspace: commit messages and reading git's answers.

Kept apart from `workspace.py` (which runs git) so the text mergebot writes into history and the
way it classifies git's output are tested without a repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mergebot.config import MergeMethod

# Trailers that tie an integration commit to its candidate: crash recovery and people reading
# `git log` find the candidate of any commit mergebot wrote.
TRAILER_SLUG = "Mergebot-Candidate"
TRAILER_SHA = "Mergebot-Sha"
TRAILER_APPROVED = "Approved-by"


@dataclass(frozen=True)
class Candidate:
    """What the workspace integrates: one exact commit of a branch, and who approved it."""

    slug: str
    branch: str
    sha: str
    approvers: tuple[str, ...] = ()


def _trailers(candidate: Candidate) -> list[str]:
    lines = [f"{TRAILER_SLUG}: {candidate.slug}", f"{TRAILER_SHA}: {candidate.sha}"]
    lines += [f"{TRAILER_APPROVED}: {who}" for who in candidate.approvers]
    return lines


def _one_line(text: str) -> str:
    """Untrusted text (branch names, commit subjects) kept to one printable line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


def commit_message(
    candidate: Candidate, base: str, method: MergeMethod, subjects: Sequence[str] = ()
) -> str:
    """The message of the commit mergebot writes for `candidate` (merge and squash methods).

    It names the slug, the exact sha and the approvers, in the subject and as trailers.
    `subjects` are the candidate's own commit subjects, listed in a squash commit.
    """
    sha7 = candidate.sha[:7]
    branch = _one_line(candidate.branch)
    if method is MergeMethod.SQUASH:
        title = f"{candidate.slug}: squash {branch} ({sha7}) into {base}"
        body = [f"Squashed {len(subjects)} commit(s) of {branch} at {candidate.sha}:", ""]
        body += [f"* {_one_line(s)}" for s in subjects[:100]]
        if len(subjects) > 100:
            body.append(f"* … and {len(subjects) - 100} more")
    else:
        title = f"Merge {candidate.slug} ({sha7}) into {base}"
        body = [f"Integrates branch {branch} at {candidate.sha}."]
    if candidate.approvers:
        body += ["", "Approved by " + ", ".join(_one_line(a) for a in candidate.approvers) + "."]
    return "\n".join([title, "", *body, "", *_trailers(candidate)]) + "\n"


def conflict_files(merge_tree_output: str) -> list[str]:
    """Conflicting paths from `git merge-tree --write-tree --name-only --no-messages` output:
    the first line is the tree id, each following line a path (a path may repeat)."""
    lines = merge_tree_output.splitlines()[1:]
    seen: dict[str, None] = {}
    for line in lines:
        if line.strip():
            seen.setdefault(line, None)
    return list(seen)


class PushStatus(StrEnum):
    OK = "ok"
    STALE = "stale"  # the remote ref is not at the sha we expected: someone moved it
    REJECTED = "rejected"  # refused for another reason (hook, permission, protection…)


@dataclass(frozen=True)
class PushResult:
    status: PushStatus
    message: str = ""
    lines: list[str] = field(default_factory=list)


_STALE_MARKERS = ("stale info", "fetch first", "non-fast-forward")


def classify_push(status: int, stdout: str, stderr: str) -> PushResult:
    """Read `git push --porcelain`: each ref line is `<flag>\\t<from>:<to>\\t<summary>`; a `!`
    flag is a rejection, whose summary says whether the ref moved under us."""
    if status == 0:
        return PushResult(PushStatus.OK)
    rejected = [line for line in stdout.splitlines() if line.startswith("!")]
    summary = "; ".join(line.split("\t")[-1] for line in rejected) or stderr.strip()[-500:]
    if any(marker in line for line in rejected for marker in _STALE_MARKERS):
        return PushResult(PushStatus.STALE, summary, rejected)
    return PushResult(PushStatus.REJECTED, summary or f"git push exited with {status}", rejected)
