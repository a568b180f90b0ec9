"""What a resume acts on, and what it still waits for (pure: facts in, values out).

`mergebot resume` and `/mergebot resume` promise to re-queue the slug's *current* candidate: the
newest head the log knows for the slug. On a plain git remote nobody announces a push, so the
CLI first asks the remote for the branch's tip; when that tip is a head the log does not know,
it is announced (`branch_pushed` and `finalize_ready`, naming the head it replaces) before the
resume, so the fix that was pushed is what gets re-queued, not the old commit that conflicted.
With approvals bound to a commit (the default), a new head needs its own approval: the resume
says who approved what, and which sha still needs one, instead of waiting silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from mergebot.readiness import RepoFacts, Rules, approvers


@dataclass(frozen=True)
class Head:
    branch: str
    sha: str


@dataclass(frozen=True)
class ApprovalNeed:
    """`sha` lacks `missing` of its `required` approvals; `elsewhere` are (reviewer, sha) of
    approvals given on other heads of the slug, which do not count for this one."""

    sha: str
    missing: int
    required: int
    counted: tuple[str, ...]
    elsewhere: tuple[tuple[str, str], ...]

    def sentence(self) -> str:
        """Who must approve which sha, in one sentence."""
        text = (
            f"{self.sha[:7]} still needs {self.missing} approval{'s' if self.missing > 1 else ''}"
            f" ({self.required} required from distinct reviewers"
        )
        text += f"; counted: {', '.join(self.counted)})" if self.counted else ")"
        if self.elsewhere:
            given = ", ".join(f"{who} approved {sha[:7]}" for who, sha in self.elsewhere)
            text += f"; {given}, which does not count for {self.sha[:7]}"
            names = sorted({who for who, _ in self.elsewhere} - set(self.counted))
            if names:
                text += f": ask {' or '.join(names)} (or another reviewer) to approve {self.sha}"
                return text
        return text + f": a reviewer must approve {self.sha}"


def newest_head(facts: RepoFacts, slug: str) -> Head | None:
    """The slug's newest head by `ready_at` (ties: the later sha, as readiness orders them when
    nothing else tells them apart)."""
    sf = facts.slugs.get(slug)
    if sf is None or not sf.finalizes:
        return None
    newest = max(sf.finalizes, key=lambda f: (f.ready_at, f.sha))
    return Head(newest.branch, newest.sha)


def approval_need(facts: RepoFacts, slug: str, sha: str, rules: Rules) -> ApprovalNeed | None:
    """What `sha` still needs to be approved enough, or None when it is."""
    counted = approvers(facts, slug, sha, rules)
    if len(counted) >= rules.required_approvals:
        return None
    sf = facts.slugs.get(slug)
    elsewhere = sorted(
        {
            (a.reviewer, a.sha)
            for a in (sf.approvals if sf else [])
            if a.sha is not None and a.sha != sha and rules.approvals_bind_to_sha
        }
    )
    return ApprovalNeed(
        sha=sha,
        missing=rules.required_approvals - len(counted),
        required=rules.required_approvals,
        counted=tuple(counted),
        elsewhere=tuple((who, str(other)) for who, other in elsewhere),
    )
