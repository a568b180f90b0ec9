"""The readiness projection (SPEC §4): events in, candidate states out, with the reasons why not.

Pure: no I/O except through `GitFacts`, questions answered by git (is a sha reachable from
`origin/<branch>`? is it already on `origin/<base>`? which of two heads descends from the other?).
Which rules apply (`Rules`) is the caller's: the processor derives them from the repo's effective
config, the same the integrator uses.

Order does not matter. Events are folded into a set of *facts* (kept sorted, so equal sets
serialize equally), and every state is a function of that set, decided by the events' own
timestamps: the newest `finalize_ready` of a slug (by `ready_at`; heads of the same second by
their `previous_sha`, then git ancestry, then sha) is its current candidate, a
dismissal cancels the same reviewer's approvals given at or before it, a withdrawal withdraws the
candidates finalized at or before it, a resume re-opens a block when it is not earlier than the
block (GitHub stamps to the second). No tie is ever broken by arrival order: duplicated, late
or reordered events give the same result as a clean stream, which is what lets several
processors, a crash/redelivery and `mergebot replay` agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from mergebot.config import REMOTE_NAME, RepoConfig
from mergebot.events import (
    BranchPushed,
    CandidateWithdrawn,
    CanonicalEvent,
    FinalizeReady,
    IntegrationBlocked,
    IntegrationCompleted,
    PrioritySet,
    QueueFrozen,
    QueueUnfrozen,
    ResumeRequested,
    ReviewApproved,
    ReviewDismissed,
)
from mergebot.queue import item_id

PREVIOUS_SHA = "previous_sha"
"""Extra field of `finalize_ready`: the head it replaced (orders two heads of one second)."""
_SHA = re.compile(r"[0-9a-f]{40}")

# -- the git side ------------------------------------------------------------------------------


class GitFactsError(Exception):
    """Git could not answer (no remote configured, fetch failed…); the message says why."""


class GitFacts(Protocol):
    """What readiness asks git, against refs fetched once per batch (never trusted from events).

    Either method may raise GitFactsError; the candidate then waits with reason git_unavailable
    and nothing in the queue changes because of it.
    """

    def reachable(self, sha: str, branch: str) -> bool:
        """Is `sha` reachable from `origin/<branch>`?"""
        ...

    def on_base(self, sha: str, base: str) -> bool:
        """Is `sha` already reachable from `origin/<base>`?"""
        ...

    def descends(self, sha: str, ancestor: str) -> bool:
        """Is `ancestor` reachable from `sha` (a different commit)? Asked only to order two
        heads of one slug finalized in the same second (see `candidates_of`)."""
        ...

    def tip(self, branch: str) -> str | None:
        """The sha of `origin/<branch>` (None when there is no such branch). The processor
        reads the repo's own config file at the base's tip (see `EffectiveConfigs`)."""
        ...


# -- facts -------------------------------------------------------------------------------------


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApprovalFact(_Fact):
    reviewer: str
    sha: str | None
    at: datetime
    review_round: int


class DismissalFact(_Fact):
    reviewer: str
    sha: str | None
    at: datetime


class FinalizeFact(_Fact):
    branch: str
    sha: str
    ready_at: datetime
    # The head this one replaced, when the producer says (GitHub `synchronize`: `before`).
    previous: str | None = None


class WithdrawalFact(_Fact):
    reason: str
    at: datetime


class OutcomeFact(_Fact):
    kind: Literal["completed", "blocked"]
    branch: str
    sha: str
    at: datetime
    reason: str | None = None
    followup_id: str | None = None
    summary: str | None = None


class ResumeFact(_Fact):
    requested_by: str
    at: datetime


class PriorityFact(_Fact):
    priority: int
    set_by: str
    at: datetime


class FreezeFact(_Fact):
    """A `queue_frozen` (frozen=True) or `queue_unfrozen` of one base."""

    frozen: bool
    base: str
    by: str
    at: datetime
    reason: str = ""
    until: datetime | None = None
    # "clearance" when mergebot closed the queue because base is red; "" for a person's freeze.
    kind: str = ""
    sha: str | None = None
    check: str | None = None


class PushFact(_Fact):
    sha: str
    remote: str
    at: datetime


_F = TypeVar("_F", bound="_Fact")


def _key(fact: _Fact) -> str:
    return fact.model_dump_json()


def _add(facts: list[_F], fact: _F) -> bool:
    """Insert into a sorted, duplicate-free list; False when it was there already."""
    if not facts:  # the usual case: no comparison, no sort keys (each one is a JSON dump)
        facts.append(fact)
        return True
    if fact in facts:
        return False
    facts.append(fact)
    facts.sort(key=_key)
    return True


class SlugFacts(BaseModel):
    approvals: list[ApprovalFact] = Field(default_factory=list)
    dismissals: list[DismissalFact] = Field(default_factory=list)
    finalizes: list[FinalizeFact] = Field(default_factory=list)
    withdrawals: list[WithdrawalFact] = Field(default_factory=list)
    outcomes: list[OutcomeFact] = Field(default_factory=list)
    resumes: list[ResumeFact] = Field(default_factory=list)
    priorities: list[PriorityFact] = Field(default_factory=list)

    def priority(self) -> int:
        """The slug's priority: the newest `priority_set` (by `at`; a tie by value, so the
        order events arrive in never decides), 0 without one."""
        if not self.priorities:
            return 0
        return max(self.priorities, key=lambda p: (p.at, p.priority, p.set_by)).priority


@dataclass(slots=True)
class _Derived:
    """What a `RepoFacts` keeps beside its facts (never stored).

    `by_branch`: branch -> slugs with a finalize_ready on it: what a branch_pushed touches,
    without looking through every slug the repo has seen. Derived from `slugs` (rebuilt on load,
    kept up to date by `add_finalize`), so it can never disagree with the facts.
    `changed_slugs`, `changed_branches`: slugs and push branches changed since `take_changed`
    was last called: what a store writes back (a batch costs what it touched, not what the repo
    holds)."""

    by_branch: dict[str, set[str]] = field(default_factory=dict)
    changed_slugs: set[str] = field(default_factory=set)
    changed_branches: set[str] = field(default_factory=set)


class RepoFacts(BaseModel):
    """Everything readiness knows about one repo: a set of facts, independent of arrival order."""

    repo: str
    slugs: dict[str, SlugFacts] = Field(default_factory=dict)
    pushes: dict[str, list[PushFact]] = Field(default_factory=dict)
    freezes: list[FreezeFact] = Field(default_factory=list)
    _derived: _Derived = PrivateAttr(default_factory=_Derived)

    def _kept(self) -> _Derived:
        """`self._derived`, read without pydantic's `__getattr__`, which costs microseconds per
        private attribute read (several reads per event folded: a fifth of a replay's fold)."""
        private = self.__pydantic_private__
        assert private is not None
        return cast(_Derived, private["_derived"])

    def model_post_init(self, context: Any, /) -> None:
        by_branch = self._kept().by_branch
        for name, sf in self.slugs.items():
            for f in sf.finalizes:
                by_branch.setdefault(f.branch, set()).add(name)

    def slug(self, slug: str) -> SlugFacts:
        self._kept().changed_slugs.add(slug)
        found = self.slugs.get(slug)
        if found is None:  # not `setdefault`: that builds (and validates) a SlugFacts every call
            found = self.slugs[slug] = SlugFacts()
        return found

    def push_facts(self, branch: str) -> list[PushFact]:
        self._kept().changed_branches.add(branch)
        return self.pushes.setdefault(branch, [])

    def take_changed(self) -> tuple[set[str], set[str]]:
        """The slugs and branches changed since the last call (and forget them)."""
        kept = self._kept()
        changed = (kept.changed_slugs, kept.changed_branches)
        kept.changed_slugs, kept.changed_branches = set(), set()
        return changed

    def mark_all_changed(self) -> None:
        kept = self._kept()
        kept.changed_slugs |= set(self.slugs)
        kept.changed_branches |= set(self.pushes)

    def add_finalize(self, slug: str, fact: FinalizeFact) -> bool:
        self._kept().by_branch.setdefault(fact.branch, set()).add(slug)
        return _add(self.slug(slug).finalizes, fact)

    def slugs_on_branch(self, branch: str) -> set[str]:
        return set(self._kept().by_branch.get(branch, ()))

    def canonical(self) -> RepoFacts:
        """The same facts with dict keys sorted, so equal sets dump to equal JSON."""
        return RepoFacts(
            repo=self.repo,
            slugs={k: self.slugs[k] for k in sorted(self.slugs)},
            pushes={k: self.pushes[k] for k in sorted(self.pushes)},
            freezes=self.freezes,
        )


class NoteCode(StrEnum):
    """Events that were stored but changed nothing (or not yet): counted and shown in status."""

    OTHER_REMOTE = "other_remote"
    DISMISSAL_WITHOUT_APPROVAL = "dismissal_without_approval"
    WITHDRAWAL_WITHOUT_CANDIDATE = "withdrawal_without_candidate"
    RESUME_WITHOUT_BLOCK = "resume_without_block"
    OUTCOME_FOR_UNKNOWN_CANDIDATE = "outcome_for_unknown_candidate"
    DUPLICATE = "duplicate"
    # Decided by the processor, not by the fold:
    NOT_MANAGED = "not_managed"
    UNREADABLE = "unreadable"
    QUEUE_CHANGE_SKIPPED = "queue_change_skipped"


@dataclass(frozen=True)
class Note:
    code: NoteCode
    text: str


@dataclass
class FoldResult:
    slugs: set[str] = field(default_factory=set)
    notes: list[Note] = field(default_factory=list)


def fold(facts: RepoFacts, event: CanonicalEvent) -> FoldResult:
    """Add one event to the facts (in place); which slugs it touched and anything worth noting."""
    out = FoldResult()
    added = True
    match event:
        case ReviewApproved():
            sf = facts.slug(event.slug)
            added = _add(
                sf.approvals,
                ApprovalFact(
                    reviewer=event.reviewer_session_id,
                    sha=event.sha,
                    at=event.approved_at,
                    review_round=event.review_round,
                ),
            )
            out.slugs.add(event.slug)
        case ReviewDismissed():
            sf = facts.slug(event.slug)
            added = _add(
                sf.dismissals,
                DismissalFact(
                    reviewer=event.reviewer_session_id, sha=event.sha, at=event.dismissed_at
                ),
            )
            if not any(a.reviewer == event.reviewer_session_id for a in sf.approvals):
                out.notes.append(
                    Note(
                        NoteCode.DISMISSAL_WITHOUT_APPROVAL,
                        f"{event.reviewer_session_id} dismissed a review of {event.slug} "
                        "without a known approval",
                    )
                )
            out.slugs.add(event.slug)
        case FinalizeReady():
            added = facts.add_finalize(
                event.slug,
                FinalizeFact(
                    branch=event.branch,
                    sha=event.sha,
                    ready_at=event.ready_at,
                    previous=_previous_sha(event),
                ),
            )
            out.slugs.add(event.slug)
        case BranchPushed():
            added = _add(
                facts.push_facts(event.branch),
                PushFact(sha=event.sha, remote=event.remote, at=event.pushed_at),
            )
            if event.remote != REMOTE_NAME:
                out.notes.append(
                    Note(
                        NoteCode.OTHER_REMOTE,
                        f"push of {event.branch} to remote {event.remote!r} ignored "
                        f"(mergebot reads {REMOTE_NAME!r})",
                    )
                )
            out.slugs |= facts.slugs_on_branch(event.branch)
        case CandidateWithdrawn():
            sf = facts.slug(event.slug)
            added = _add(sf.withdrawals, WithdrawalFact(reason=event.reason.value, at=event.at))
            if not sf.finalizes:
                out.notes.append(
                    Note(
                        NoteCode.WITHDRAWAL_WITHOUT_CANDIDATE,
                        f"{event.slug} withdrawn ({event.reason}) before any finalize_ready",
                    )
                )
            out.slugs.add(event.slug)
        case IntegrationCompleted():
            sf = facts.slug(event.slug)
            added = _add(
                sf.outcomes,
                OutcomeFact(
                    kind="completed",
                    branch=event.branch,
                    sha=event.sha,
                    at=event.integrated_at,
                    summary=f"{event.main_before[:7]}..{event.main_after[:7]}",
                ),
            )
            _note_unknown(sf, event.slug, event.sha, out)
            out.slugs.add(event.slug)
        case IntegrationBlocked():
            sf = facts.slug(event.slug)
            added = _add(
                sf.outcomes,
                OutcomeFact(
                    kind="blocked",
                    branch=event.branch,
                    sha=event.sha,
                    at=event.blocked_at,
                    reason=event.reason,
                    followup_id=event.followup_id,
                    summary=_blocked_summary(event),
                ),
            )
            _note_unknown(sf, event.slug, event.sha, out)
            out.slugs.add(event.slug)
        case ResumeRequested():
            sf = facts.slug(event.slug)
            added = _add(sf.resumes, ResumeFact(requested_by=event.requested_by, at=event.at))
            if not any(
                o.kind == "blocked" and _second(o.at) <= _second(event.at) for o in sf.outcomes
            ):
                out.notes.append(
                    Note(
                        NoteCode.RESUME_WITHOUT_BLOCK,
                        f"resume of {event.slug} by {event.requested_by}: "
                        "nothing blocked before it",
                    )
                )
            out.slugs.add(event.slug)
        case PrioritySet() | QueueFrozen() | QueueUnfrozen():
            added = _fold_control(facts, event, out)
    if not added:
        out.notes.append(Note(NoteCode.DUPLICATE, f"{event.event_name} already known"))
    return out


def _fold_control(
    facts: RepoFacts, event: PrioritySet | QueueFrozen | QueueUnfrozen, out: FoldResult
) -> bool:
    """Priorities touch their slug (its items get reordered); freezes touch no candidate: the
    integrator reads them (`frozen_state`) right before it would move base."""
    if isinstance(event, PrioritySet):
        out.slugs.add(event.slug)
        fact = PriorityFact(priority=event.priority, set_by=event.set_by, at=event.at)
        return _add(facts.slug(event.slug).priorities, fact)
    return _add(facts.freezes, _freeze_fact(event))


def _freeze_fact(event: QueueFrozen | QueueUnfrozen) -> FreezeFact:
    extra = event.model_extra or {}

    def text(name: str) -> str | None:
        value = extra.get(name)
        return value if isinstance(value, str) and value.strip() else None

    if isinstance(event, QueueUnfrozen):
        return FreezeFact(
            frozen=False, base=event.base, by=event.by, at=event.at, kind=text("kind") or ""
        )

    return FreezeFact(
        frozen=True,
        base=event.base,
        by=event.by,
        at=event.at,
        reason=event.reason,
        until=event.until,
        kind=text("kind") or "",
        sha=text("sha"),
        check=text("check"),
    )


def _previous_sha(event: FinalizeReady) -> str | None:
    """The optional extra field `previous_sha`: the head this finalize replaced, when it is a
    40-hex sha other than the event's own (anything else is ignored, not trusted)."""
    value = (event.model_extra or {}).get(PREVIOUS_SHA)
    if isinstance(value, str) and _SHA.fullmatch(value) and value != event.sha:
        return value
    return None


def _second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def _block_key(block: OutcomeFact) -> tuple[datetime, str, str]:
    return (block.at, block.followup_id or "", block.sha)


def resumed_blocks(
    candidate_blocks: list[OutcomeFact], slug_resumes: list[ResumeFact]
) -> set[tuple[datetime, str, str]]:
    """A candidate's blocks that a resume of its slug answered. Each resume answers one block of
    the candidate at most: blocks and resumes are matched in time order, each block taking the
    earliest resume not before it that no earlier block took. So one `mergebot resume`
    re-queues once, and a block that happens after it was acted on (the same conflict again,
    even within the same second) needs a new resume. "Not before" is to the second: GitHub
    stamps comments to the second (a resume at 10:00:05 may follow a block at 10:00:05.4),
    and nobody resumes a block they have not seen."""
    blocks = sorted(candidate_blocks, key=_block_key)
    resumes = sorted(slug_resumes, key=lambda r: (r.at, r.requested_by))
    answered: set[tuple[datetime, str, str]] = set()
    next_resume = 0
    for block in blocks:
        while next_resume < len(resumes) and _second(resumes[next_resume].at) < _second(block.at):
            next_resume += 1  # too early for this block, and so for every later one
        if next_resume < len(resumes):
            answered.add(_block_key(block))
            next_resume += 1
    return answered


def _note_unknown(sf: SlugFacts, slug: str, sha: str, out: FoldResult) -> None:
    if not any(f.sha == sha for f in sf.finalizes):
        out.notes.append(
            Note(
                NoteCode.OUTCOME_FOR_UNKNOWN_CANDIDATE,
                f"integration outcome for {slug} at {sha[:7]} without a finalize_ready",
            )
        )


def _blocked_summary(event: IntegrationBlocked) -> str:
    details = event.details
    for key in ("files", "conflict_files", "failed_checks", "checks"):
        value = details.get(key)
        if isinstance(value, list) and value:
            names = [str(v.get("name", v)) if isinstance(v, dict) else str(v) for v in value]
            return f"{event.reason}: {', '.join(names[:5])}"
    message = details.get("message")
    return f"{event.reason}: {message}" if isinstance(message, str) else event.reason


# -- states ------------------------------------------------------------------------------------


class ReasonCode(StrEnum):
    APPROVALS_MISSING = "approvals_missing"  # condition 1
    FINALIZE_MISSING = "finalize_missing"  # condition 2
    PUSH_MISSING = "push_missing"  # condition 3
    NOT_REACHABLE = "not_reachable"  # condition 4
    SUPERSEDED = "superseded"  # condition 5
    ALREADY_INTEGRATED = "already_integrated"  # condition 6
    WITHDRAWN = "withdrawn"
    BLOCKED = "blocked"
    GIT_UNAVAILABLE = "git_unavailable"


class Reason(_Fact):
    code: ReasonCode
    text: str


class CandidateStatus(StrEnum):
    WAITING = "waiting"
    READY = "ready"
    BLOCKED = "blocked"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"
    INTEGRATED = "integrated"


class CandidateState(_Fact):
    slug: str
    branch: str | None
    sha: str | None
    status: CandidateStatus
    ready_at: datetime | None = None
    reasons: list[Reason] = Field(default_factory=list)
    followup_id: str | None = None
    # The slug's priority (newest `priority_set`): the queue orders by it, then by ready_at.
    priority: int = 0
    # True when the status comes from an integration_completed / integration_blocked event.
    by_event: bool = False
    # The follow-up id of a block that a later resume_requested re-opened: the queue item of that
    # block may go back to queued (a newer block, not yet in the log, has another id).
    resumed_followup: str | None = None

    @property
    def key(self) -> str:
        if self.branch is None or self.sha is None:
            return self.slug
        return item_id(self.slug, self.branch, self.sha)

    @property
    def is_candidate(self) -> bool:
        return self.branch is not None and self.sha is not None

    def reason_texts(self) -> list[str]:
        return [r.text for r in self.reasons]

    def git_unknown(self) -> bool:
        return any(r.code == ReasonCode.GIT_UNAVAILABLE for r in self.reasons)


@dataclass(frozen=True)
class Rules:
    """The per-repo settings readiness depends on."""

    base: str = "main"
    required_approvals: int = 1
    approvals_bind_to_sha: bool = True
    remote: str = REMOTE_NAME

    @classmethod
    def from_config(cls, config: RepoConfig) -> Rules:
        return cls(
            base=config.base_branch,
            required_approvals=config.required_approvals,
            approvals_bind_to_sha=config.approvals_bind_to_sha,
        )


@dataclass(frozen=True)
class _Candidate:
    branch: str
    sha: str
    ready_at: datetime

    def order(self) -> tuple[datetime, str, str]:
        return (self.ready_at, self.sha, self.branch)


@dataclass
class Lineup:
    """A slug's candidates, oldest first, and which one is current.

    `current` is None when the newest ones could not be told apart (git failed while ordering
    a tie); `undecided` then holds them and why, and none of them is called superseded.
    """

    candidates: list[_Candidate]
    current: _Candidate | None
    undecided: frozenset[_Candidate] = frozenset()
    why: GitFactsError | None = None


def candidates_of(sf: SlugFacts, git: GitFacts) -> Lineup:
    """The slug's candidates, each with its newest ready_at, oldest first, current last.

    The current candidate is the newest by `ready_at`. GitHub stamps to the second, so two heads
    can share it; then, in this order: a head another one of that second names as its
    `previous` is older; a head that is an ancestor of another one (git) is older; what is
    left is ordered by sha, which is arbitrary but the same for every arrival order.
    """
    newest: dict[tuple[str, str], datetime] = {}
    for f in sf.finalizes:
        key = (f.branch, f.sha)
        if key not in newest or f.ready_at > newest[key]:
            newest[key] = f.ready_at
    found = sorted((_Candidate(b, s, at) for (b, s), at in newest.items()), key=_Candidate.order)
    if not found:
        return Lineup([], None)
    top = [c for c in found if c.ready_at == found[-1].ready_at]
    if len(top) == 1:
        return Lineup(found, found[-1])
    shas = {c.sha for c in top}
    replaced = {
        f.previous
        for f in sf.finalizes
        if f.previous in shas and f.ready_at == top[0].ready_at and f.sha in shas
    }
    left = [c for c in top if c.sha not in replaced] or top
    if len({c.sha for c in left}) > 1:
        try:
            older = {
                a.sha for a in left for d in left if a.sha != d.sha and git.descends(d.sha, a.sha)
            }
        except GitFactsError as exc:
            return Lineup(found, None, frozenset(left), exc)
        left = [c for c in left if c.sha not in older] or left
    current = left[-1]
    return Lineup([c for c in found if c != current] + [current], current)


def _short(sha: str | None) -> str:
    return sha[:7] if sha else "?"


def _approvals(sf: SlugFacts, sha: str | None, rules: Rules) -> tuple[list[str], list[Reason]]:
    """Distinct reviewers whose approval counts for `sha`, and a reason when too few do."""
    counted: set[str] = set()
    stale: set[str] = set()
    dismissed: set[str] = set()
    for a in sf.approvals:
        if sha is not None and a.sha is not None and rules.approvals_bind_to_sha and a.sha != sha:
            stale.add(f"{a.reviewer} approved {_short(a.sha)}")
            continue
        cancelled = any(
            d.reviewer == a.reviewer
            and d.at >= a.at
            and (d.sha is None or a.sha is None or d.sha == a.sha)
            for d in sf.dismissals
        )
        if cancelled:
            dismissed.add(a.reviewer)
        else:
            counted.add(a.reviewer)
    reviewers = sorted(counted)
    if len(reviewers) >= rules.required_approvals:
        return reviewers, []
    need = rules.required_approvals
    text = (
        f"needs {need} approval{'s' if need > 1 else ''} from distinct reviewers, "
        f"has {len(reviewers)}"
    )
    if reviewers:
        text += f" ({', '.join(reviewers)})"
    stale_only = sorted(s for s in stale if s.split(" ", 1)[0] not in counted)
    if stale_only:
        text += f"; not for this sha: {', '.join(stale_only)}"
    dismissed_only = sorted(dismissed - counted)
    if dismissed_only:
        text += f"; dismissed: {', '.join(dismissed_only)}"
    return reviewers, [Reason(code=ReasonCode.APPROVALS_MISSING, text=text)]


def _git_reason(exc: GitFactsError) -> Reason:
    return Reason(code=ReasonCode.GIT_UNAVAILABLE, text=f"could not check with git: {exc}")


def evaluate_slug(facts: RepoFacts, slug: str, rules: Rules, git: GitFacts) -> list[CandidateState]:
    """The state of every candidate of `slug` (or one `waiting` entry when it has none)."""
    sf = facts.slugs.get(slug) or SlugFacts()
    lineup = candidates_of(sf, git)
    if not lineup.candidates:
        if not sf.approvals and not sf.dismissals:
            return []
        _, missing = _approvals(sf, None, rules)
        reason = Reason(
            code=ReasonCode.FINALIZE_MISSING, text="no finalize_ready yet (which branch and sha?)"
        )
        return [
            CandidateState(
                slug=slug, branch=None, sha=None, status=CandidateStatus.WAITING,
                reasons=[*missing, reason],
            )
        ]  # fmt: skip
    return [
        _evaluate(
            sf, slug, c, lineup=lineup, rules=rules, git=git, pushes=facts.pushes.get(c.branch, [])
        )
        for c in lineup.candidates
    ]


def _evaluate(
    sf: SlugFacts,
    slug: str,
    c: _Candidate,
    *,
    lineup: Lineup,
    rules: Rules,
    git: GitFacts,
    pushes: list[PushFact],
) -> CandidateState:
    def state(status: CandidateStatus, *reasons: Reason, **extra: object) -> CandidateState:
        return CandidateState(
            slug=slug, branch=c.branch, sha=c.sha, status=status, ready_at=c.ready_at,
            reasons=list(reasons), priority=sf.priority(), **extra,
        )  # fmt: skip

    outcomes = [o for o in sf.outcomes if o.sha == c.sha]
    completed = [o for o in outcomes if o.kind == "completed"]
    if completed:
        done = min(completed, key=lambda o: o.at)
        text = f"integrated into {rules.base} ({done.summary})"
        return state(
            CandidateStatus.INTEGRATED,
            Reason(code=ReasonCode.ALREADY_INTEGRATED, text=text),
            by_event=True,
        )
    if c in lineup.undecided and lineup.why is not None:
        return state(CandidateStatus.WAITING, _git_reason(lineup.why))
    current = lineup.current
    if c != current:
        text = (
            f"superseded by {_short(current.sha)} on {current.branch} (a newer finalize_ready)"
            if current is not None
            else "superseded by a newer finalize_ready"
        )
        return state(CandidateStatus.SUPERSEDED, Reason(code=ReasonCode.SUPERSEDED, text=text))
    withdrawals = [w for w in sf.withdrawals if w.at >= c.ready_at]
    if withdrawals:
        w = max(withdrawals, key=lambda w: (w.at, w.reason))
        text = f"withdrawn ({w.reason})"
        return state(CandidateStatus.WITHDRAWN, Reason(code=ReasonCode.WITHDRAWN, text=text))
    blocks = [o for o in outcomes if o.kind == "blocked" and o.branch == c.branch]
    resumed: str | None = None
    if blocks:
        block = max(blocks, key=lambda o: (o.at, o.followup_id or ""))
        if _block_key(block) not in resumed_blocks(blocks, sf.resumes):
            text = f"blocked: {block.summary or block.reason}"
            return state(
                CandidateStatus.BLOCKED,
                Reason(code=ReasonCode.BLOCKED, text=text),
                followup_id=block.followup_id,
                by_event=True,
            )
        resumed = block.followup_id or ""
    try:
        if git.on_base(c.sha, rules.base):
            text = f"{_short(c.sha)} is already on {rules.remote}/{rules.base}"
            return state(
                CandidateStatus.INTEGRATED,
                Reason(code=ReasonCode.ALREADY_INTEGRATED, text=text),
                resumed_followup=resumed,
            )
    except GitFactsError as exc:
        return state(CandidateStatus.WAITING, _git_reason(exc), resumed_followup=resumed)
    _, reasons = _approvals(sf, c.sha, rules)
    if not any(p.sha == c.sha and p.remote == rules.remote for p in pushes):
        reasons.append(
            Reason(
                code=ReasonCode.PUSH_MISSING,
                text=f"no branch_pushed of {_short(c.sha)} to {rules.remote}/{c.branch}",
            )
        )
    try:
        if not git.reachable(c.sha, c.branch):
            reasons.append(
                Reason(
                    code=ReasonCode.NOT_REACHABLE,
                    text=f"{_short(c.sha)} is not reachable from {rules.remote}/{c.branch}",
                )
            )
    except GitFactsError as exc:
        reasons.append(_git_reason(exc))
    if reasons:
        return state(CandidateStatus.WAITING, *reasons, resumed_followup=resumed)
    return state(CandidateStatus.READY, resumed_followup=resumed)


def evaluate(
    facts: RepoFacts, rules: Rules, git: GitFacts, slugs: Iterable[str] | None = None
) -> dict[str, CandidateState]:
    """States of the slugs' candidates (all slugs when None), keyed by `CandidateState.key`."""
    chosen = sorted(facts.slugs) if slugs is None else sorted(set(slugs))
    states: dict[str, CandidateState] = {}
    for slug in chosen:
        for st in evaluate_slug(facts, slug, rules, git):
            states[st.key] = st
    return states


def approvers(facts: RepoFacts, slug: str, sha: str, rules: Rules) -> list[str]:
    """The reviewers whose approval counts for `sha` now (named in the integration commit)."""
    reviewers, _missing = _approvals(facts.slugs.get(slug) or SlugFacts(), sha, rules)
    return reviewers
