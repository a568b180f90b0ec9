"""Cutover on evidence (pure): what mergebot decided in shadow mode against what people did.

In shadow mode mergebot records a decision per candidate (`integration_completed` with
`mode: "shadow"` = *would integrate*, `integration_blocked` with `mode: "shadow"` = *would block*)
while people keep merging by hand. Before mergebot is allowed to write base (`mode = "live"`),
an operator wants to know how often the two agree. This module decides that from values:

- `shadow_history(envelopes)` reads the recorded decisions and each slug's heads and withdrawals
  out of the event log (the system of record);
- the edges (`mergebot.cutover_facts`) ask git where each candidate went (its sha, or its content,
  on base) and the forge whether base stayed green there, as `BaseFacts`;
- `compare` judges one candidate, `build_report` all of them: parity is the share of compared
  candidates where the two agree, and every disagreement carries a sentence saying why;
- `gate` decides, from the operator's `cutover` settings and the stored evidence, whether a repo
  asked to run live may do so or stays in shadow.

Nothing here does I/O, so every rule is a unit test on values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mergebot.config import CutoverConfig, Mode
from mergebot.events import (
    CandidateWithdrawn,
    Envelope,
    EventName,
    FinalizeReady,
    IntegrationBlocked,
    IntegrationCompleted,
    WithdrawReason,
)


class Verdict(StrEnum):
    WOULD_INTEGRATE = "would_integrate"
    WOULD_BLOCK = "would_block"


class HumanOutcome(StrEnum):
    """What happened to a candidate on base while mergebot only watched."""

    MERGED = "merged"  # its sha, or its content, reached base
    CLOSED = "closed"  # withdrawn (closed, cancelled…) without reaching base
    SUPERSEDED = "superseded"  # a newer head of the slug replaced it before either
    OPEN = "open"  # none of these yet


class Agreement(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    NOT_COMPARED = "not_compared"  # nothing to compare with yet (open, superseded)


@dataclass(frozen=True)
class ShadowDecision:
    """mergebot's latest shadow decision on one candidate (slug, sha)."""

    slug: str
    branch: str
    sha: str
    verdict: Verdict
    at: datetime
    base_sha: str | None = None  # base when it decided (None when the record does not say)
    reason: str | None = None  # the block reason (would block only)

    @property
    def key(self) -> tuple[str, str]:
        return (self.slug, self.sha)


@dataclass(frozen=True)
class Head:
    """A head the log knows for a slug (`finalize_ready`)."""

    sha: str
    ready_at: datetime


@dataclass(frozen=True)
class ShadowHistory:
    """What the event log says about a repo's shadow decisions and its candidates' lives."""

    decisions: list[ShadowDecision]
    heads: dict[str, list[Head]] = field(default_factory=dict)  # slug -> heads
    withdrawals: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Landing:
    """Where a candidate reached base: the base commit, and how git recognised it."""

    commit: str
    how: str  # "sha" (its commit is on base) or "content" (an equivalent patch is)


@dataclass(frozen=True)
class Health:
    """Whether base was green at a commit: True, False, or None when nobody can tell."""

    green: bool | None
    detail: str = ""


def combine_health(*answers: Health) -> Health:
    """Several answers about one commit (the forge's checks, the clearance commands): red if
    any saw red, else green if any saw green, else unknown."""
    for verdict in (False, True):
        for health in answers:
            if health.green is verdict:
                return health
    return Health(None)


@dataclass(frozen=True)
class BaseFacts:
    """What git and the forge say about one candidate (gathered at the edges)."""

    landing: Landing | None
    health: Health = Health(None)


@dataclass(frozen=True)
class Comparison:
    decision: ShadowDecision
    outcome: HumanOutcome
    agreement: Agreement
    why: str
    landing: Landing | None = None
    health: Health = Health(None)

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "slug": d.slug,
            "branch": d.branch,
            "sha": d.sha,
            "decision": d.verdict.value,
            "decided_at": d.at.isoformat(),
            "reason": d.reason,
            "outcome": self.outcome.value,
            "landed_as": self.landing.commit if self.landing else None,
            "landed_how": self.landing.how if self.landing else None,
            "base_green": self.health.green,
            "agreement": self.agreement.value,
            "why": self.why,
        }


@dataclass(frozen=True)
class CutoverReport:
    repo: str
    since: datetime | None
    comparisons: list[Comparison]

    @property
    def compared(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.agreement is not Agreement.NOT_COMPARED]

    @property
    def agreements(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.agreement is Agreement.AGREE]

    @property
    def disagreements(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.agreement is Agreement.DISAGREE]

    @property
    def not_compared(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.agreement is Agreement.NOT_COMPARED]

    @property
    def parity(self) -> float | None:
        """Agreements / compared candidates; None when nothing could be compared yet."""
        compared = len(self.compared)
        return len(self.agreements) / compared if compared else None

    def evidence(self, evaluated_at: datetime) -> Evidence:
        return Evidence(
            parity=self.parity,
            decisions=len(self.compared),
            disagreements=len(self.disagreements),
            evaluated_at=evaluated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "since": self.since.isoformat() if self.since else None,
            "parity": self.parity,
            "decisions": len(self.comparisons),
            "compared": len(self.compared),
            "agreements": len(self.agreements),
            "disagreements": [c.to_dict() for c in self.disagreements],
            "not_compared": [c.to_dict() for c in self.not_compared],
            "candidates": [c.to_dict() for c in self.comparisons],
        }


# -- reading the record ------------------------------------------------------------------------
def _shadow(payload: Mapping[str, Any]) -> bool:
    return payload.get("mode") == Mode.SHADOW.value


def _decision(envelope: Envelope) -> ShadowDecision | None:
    """The shadow decision an outcome event records, or None for anything else."""
    payload = envelope.payload
    if envelope.name is EventName.INTEGRATION_COMPLETED and _shadow(payload):
        done = IntegrationCompleted.model_validate(payload)
        if done.main_before == done.main_after:
            return None  # found already on base: people were first, mergebot decided nothing
        return ShadowDecision(
            slug=done.slug,
            branch=done.branch,
            sha=done.sha,
            verdict=Verdict.WOULD_INTEGRATE,
            at=done.integrated_at,
            base_sha=done.main_before,
        )
    if envelope.name is EventName.INTEGRATION_BLOCKED and _shadow(payload):
        blocked = IntegrationBlocked.model_validate(payload)
        base_sha = blocked.details.get("base_sha")
        return ShadowDecision(
            slug=blocked.slug,
            branch=blocked.branch,
            sha=blocked.sha,
            verdict=Verdict.WOULD_BLOCK,
            at=blocked.blocked_at,
            base_sha=base_sha if isinstance(base_sha, str) else None,
            reason=blocked.reason,
        )
    return None


def shadow_history(envelopes: Iterable[Envelope], since: datetime | None = None) -> ShadowHistory:
    """The latest shadow decision per candidate (decided at or after `since`), with every head
    and withdrawal of the slugs. A candidate blocked, resumed and then found good counts once,
    as its last decision says."""
    latest: dict[tuple[str, str], ShadowDecision] = {}
    heads: dict[str, list[Head]] = {}
    withdrawals: dict[str, list[tuple[datetime, str]]] = {}
    for envelope in envelopes:
        if envelope.name is EventName.FINALIZE_READY:
            ready = FinalizeReady.model_validate(envelope.payload)
            heads.setdefault(ready.slug, []).append(Head(ready.sha, ready.ready_at))
            continue
        if envelope.name is EventName.CANDIDATE_WITHDRAWN:
            gone = CandidateWithdrawn.model_validate(envelope.payload)
            withdrawals.setdefault(gone.slug, []).append((gone.at, gone.reason.value))
            continue
        decision = _decision(envelope)
        if decision is None or (since is not None and decision.at < since):
            continue
        held = latest.get(decision.key)
        if held is None or decision.at >= held.at:
            latest[decision.key] = decision
    decisions = sorted(latest.values(), key=lambda d: (d.at, d.slug, d.sha))
    return ShadowHistory(decisions, heads, withdrawals)


# -- judging -----------------------------------------------------------------------------------
# Withdrawals that mean "people decided not to merge it"; a draft or a retargeted pull request
# may still come back, so it is not compared yet.
_CLOSING = frozenset({WithdrawReason.CLOSED.value, WithdrawReason.CANCELLED.value})


def human_outcome(
    decision: ShadowDecision, landing: Landing | None, history: ShadowHistory
) -> tuple[HumanOutcome, str]:
    """What people did with the candidate: git's answer first (a merged pull request is also
    closed), then a newer head of the slug, then a withdrawal after the candidate's head."""
    if landing is not None:
        how = "its commit" if landing.how == "sha" else "an equivalent change"
        return HumanOutcome.MERGED, f"{how} reached base in {landing.commit[:7]}"
    own = [h for h in history.heads.get(decision.slug, []) if h.sha == decision.sha]
    ready_at = min((h.ready_at for h in own), default=decision.at)
    newer = [
        h
        for h in history.heads.get(decision.slug, [])
        if h.sha != decision.sha and h.ready_at > ready_at
    ]
    if newer:
        latest = max(newer, key=lambda h: h.ready_at)
        return HumanOutcome.SUPERSEDED, f"replaced by {latest.sha[:7]} before anyone merged it"
    gone = [(at, why) for at, why in history.withdrawals.get(decision.slug, []) if at >= ready_at]
    if gone:
        at, why = max(gone)
        if why in _CLOSING:
            return HumanOutcome.CLOSED, f"{why} at {at.isoformat()} without reaching base"
        return HumanOutcome.OPEN, f"not on base yet ({why} at {at.isoformat()})"
    return HumanOutcome.OPEN, "not on base yet and still open"


def _health_text(health: Health) -> str:
    if health.green is None:
        return "whether base stayed green is not known"
    state = "stayed green" if health.green else "went red"
    return f"base {state}" + (f" ({health.detail})" if health.detail else "")


def compare(decision: ShadowDecision, facts: BaseFacts, history: ShadowHistory) -> Comparison:
    """Judge one candidate. Agreement: mergebot would integrate what people merged onto a base
    that stayed green (or whose health nobody can tell), and would block what people closed or
    what turned base red. Open or superseded candidates are not compared (yet)."""
    outcome, what = human_outcome(decision, facts.landing, history)
    health = facts.health if outcome is HumanOutcome.MERGED else Health(None)
    integrate = decision.verdict is Verdict.WOULD_INTEGRATE
    mine = (
        "mergebot would have integrated it"
        if integrate
        else (f"mergebot would have blocked it ({decision.reason})")
    )
    match outcome:
        case HumanOutcome.OPEN | HumanOutcome.SUPERSEDED:
            agreement = Agreement.NOT_COMPARED
            why = f"{what}; {mine}"
        case HumanOutcome.CLOSED:
            agreement = Agreement.DISAGREE if integrate else Agreement.AGREE
            why = f"people did not merge it: {what}; {mine}"
        case HumanOutcome.MERGED:
            red = health.green is False
            agreement = Agreement.AGREE if integrate != red else Agreement.DISAGREE
            why = f"people merged it: {what}, and {_health_text(health)}; {mine}"
    return Comparison(decision, outcome, agreement, why, facts.landing, health)


def build_report(
    repo: str,
    history: ShadowHistory,
    facts: Mapping[tuple[str, str], BaseFacts],
    since: datetime | None = None,
) -> CutoverReport:
    """Every decision judged against its facts (a candidate without facts: nothing reached base)."""
    comparisons = [
        compare(d, facts.get(d.key, BaseFacts(None)), history) for d in history.decisions
    ]
    return CutoverReport(repo, since, comparisons)


# -- the gate ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """The shadow record of a repo as last evaluated (stored, so every process reads the same)."""

    parity: float | None
    decisions: int
    disagreements: int
    evaluated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "parity": self.parity,
            "decisions": self.decisions,
            "disagreements": self.disagreements,
            "evaluated_at": self.evaluated_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        parity = data.get("parity")
        return cls(
            parity=float(parity) if parity is not None else None,
            decisions=int(data["decisions"]),
            disagreements=int(data.get("disagreements", 0)),
            evaluated_at=datetime.fromisoformat(str(data["evaluated_at"])),
        )


@dataclass(frozen=True)
class ModeDecision:
    """The mode a repo runs in, against the one its operator asked for."""

    requested: Mode
    mode: Mode
    reason: str

    @property
    def held_back(self) -> bool:
        """Asked to run live, kept in shadow by the cutover bar."""
        return self.requested is Mode.LIVE and self.mode is Mode.SHADOW

    def to_dict(self, cutover: CutoverConfig, evidence: Evidence | None) -> dict[str, Any]:
        return {
            "requested_mode": self.requested.value,
            "mode": self.mode.value,
            "held_back": self.held_back,
            "reason": self.reason,
            "min_parity": cutover.min_parity,
            "min_decisions": cutover.min_decisions,
            "accepted": cutover.accepted,
            "evidence": evidence.to_dict() if evidence else None,
        }


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def gate(requested: Mode, cutover: CutoverConfig, evidence: Evidence | None) -> ModeDecision:
    """Whether a repo asked to run live may: always when the operator accepted it or set no bar;
    otherwise only when its shadow record has `min_decisions` compared candidates and
    `min_parity` of them agree. Shadow is always allowed (rolling back needs no evidence)."""
    if requested is Mode.SHADOW:
        return ModeDecision(requested, Mode.SHADOW, "shadow mode as configured")
    if cutover.accepted:
        return ModeDecision(requested, Mode.LIVE, "live: cutover accepted by the operator")
    if not cutover.has_bar:
        return ModeDecision(requested, Mode.LIVE, "live as configured (no cutover bar set)")
    if evidence is None:
        return ModeDecision(
            requested, Mode.SHADOW, "stays in shadow: the shadow record was not evaluated yet"
        )
    missing: list[str] = []
    needed = cutover.min_decisions or 0
    if evidence.decisions < needed:
        missing.append(f"{evidence.decisions} compared decisions, {needed} needed")
    if cutover.min_parity is not None:
        parity = evidence.parity
        if parity is None or parity < cutover.min_parity:
            shown = _percent(parity) if parity is not None else "no parity"
            missing.append(f"parity {shown}, {_percent(cutover.min_parity)} needed")
    if missing:
        return ModeDecision(requested, Mode.SHADOW, "stays in shadow: " + "; ".join(missing))
    shown = _percent(evidence.parity) if evidence.parity is not None else "n/a"
    return ModeDecision(
        requested,
        Mode.LIVE,
        f"live: parity {shown} over {evidence.decisions} compared decisions meets the bar",
    )
