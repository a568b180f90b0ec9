"""Cutover parity and the live gate, on values: a recorded shadow history with known agreements
and disagreements gives the exact parity and names every disagreement with its reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mergebot.config import CutoverConfig, Mode
from mergebot.cutover import (
    Agreement,
    BaseFacts,
    Evidence,
    Health,
    HumanOutcome,
    Landing,
    Verdict,
    build_report,
    gate,
    shadow_history,
)
from mergebot.events import Envelope
from tests import cutoverkit as kit
from tests.cutoverkit import REPO, T0, at, env, withdrawn


def sha(n: int) -> str:
    return f"{n:040x}"


def ready(slug: str, n: int, minute: int) -> Envelope:
    return kit.ready(slug, sha(n), minute)


def would_integrate(slug: str, n: int, minute: int, mode: str = "shadow") -> Envelope:
    return kit.would_integrate(slug, sha(n), minute, mode)


def would_block(slug: str, n: int, minute: int, reason: str = "checks_failed") -> Envelope:
    return kit.would_block(slug, sha(n), minute, reason)


def merged(n: int, *, green: bool | None = True, how: str = "sha") -> BaseFacts:
    detail = "" if green is None else ("ci green" if green else "test failed on base")
    return BaseFacts(Landing(sha(2000 + n), how), Health(green, detail))


# A recorded shadow history: ten candidates, each with a known fate.
HISTORY = [
    ready("pr-1", 1, 0), would_integrate("pr-1", 1, 1),   # merged, green: agree
    ready("pr-2", 2, 0), would_integrate("pr-2", 2, 2),   # squashed by hand, green: agree
    ready("pr-3", 3, 0), would_integrate("pr-3", 3, 3), withdrawn("pr-3", 30),  # closed: DISAGREE
    ready("pr-4", 4, 0), would_integrate("pr-4", 4, 4),   # merged, base red: DISAGREE
    ready("pr-5", 5, 0), would_block("pr-5", 5, 5), withdrawn("pr-5", 50),  # closed: agree
    ready("pr-6", 6, 0), would_block("pr-6", 6, 6, "merge_conflict"),  # merged, green: DISAGREE
    ready("pr-7", 7, 0), would_block("pr-7", 7, 7),       # merged, base red: agree
    ready("pr-8", 8, 0), would_integrate("pr-8", 8, 8),   # still open: not compared
    ready("pr-9", 9, 0), would_block("pr-9", 9, 9), ready("pr-9", 19, 20),  # superseded
    ready("pr-10", 10, 0), would_block("pr-10", 10, 10), withdrawn("pr-10", 11, "cancelled"),
    would_integrate("live-1", 11, 12, mode="live"),       # a live outcome: not a shadow decision
]  # fmt: skip
FACTS = {
    ("pr-1", sha(1)): merged(1),
    ("pr-2", sha(2)): merged(2, how="content"),
    ("pr-4", sha(4)): merged(4, green=False),
    ("pr-6", sha(6)): merged(6),
    ("pr-7", sha(7)): merged(7, green=False),
}


def test_parity_and_every_disagreement_of_a_recorded_history() -> None:
    report = build_report(REPO, shadow_history(HISTORY), FACTS)

    assert len(report.comparisons) == 10
    assert len(report.compared) == 8
    assert [c.decision.slug for c in report.agreements] == ["pr-1", "pr-2", "pr-5", "pr-7", "pr-10"]
    assert report.parity == pytest.approx(5 / 8)
    by_slug = {c.decision.slug: c for c in report.disagreements}
    assert sorted(by_slug) == ["pr-3", "pr-4", "pr-6"]
    assert by_slug["pr-3"].outcome is HumanOutcome.CLOSED
    assert "people did not merge it" in by_slug["pr-3"].why
    assert "would have integrated" in by_slug["pr-3"].why
    assert "went red (test failed on base)" in by_slug["pr-4"].why
    assert "stayed green" in by_slug["pr-6"].why
    assert "would have blocked it (merge_conflict)" in by_slug["pr-6"].why
    assert {c.decision.slug: c.outcome for c in report.not_compared} == {
        "pr-8": HumanOutcome.OPEN,
        "pr-9": HumanOutcome.SUPERSEDED,
    }
    assert report.to_dict()["parity"] == pytest.approx(0.625)
    assert [d["slug"] for d in report.to_dict()["disagreements"]] == ["pr-3", "pr-4", "pr-6"]


def test_the_last_decision_of_a_candidate_counts_and_since_filters() -> None:
    history = [
        ready("pr-1", 1, 0),
        would_block("pr-1", 1, 1),  # blocked, resumed, then found good
        would_integrate("pr-1", 1, 5),
        ready("pr-2", 2, 0),
        would_integrate("pr-2", 2, 2),
    ]
    decisions = shadow_history(history).decisions
    assert [(d.slug, d.verdict) for d in decisions] == [
        ("pr-2", Verdict.WOULD_INTEGRATE),
        ("pr-1", Verdict.WOULD_INTEGRATE),
    ]
    later = shadow_history(history, since=T0 + timedelta(minutes=3)).decisions
    assert [d.slug for d in later] == ["pr-1"]


def test_a_candidate_found_already_on_base_is_no_decision() -> None:
    already = env(
        "integration_completed", slug="pr-1", branch="b/pr-1", sha=sha(1), main_before=sha(900),
        main_after=sha(900), integrated_at=at(1), checks=[], mode="shadow",
    )  # fmt: skip
    assert shadow_history([ready("pr-1", 1, 0), already]).decisions == []


def test_unknown_base_health_counts_by_merging_alone() -> None:
    history = [ready("pr-1", 1, 0), would_integrate("pr-1", 1, 1)]
    report = build_report(REPO, shadow_history(history), {("pr-1", sha(1)): merged(1, green=None)})
    assert report.comparisons[0].agreement is Agreement.AGREE
    assert "not known" in report.comparisons[0].why


def test_a_draft_is_not_a_closing() -> None:
    history = [ready("pr-1", 1, 0), would_integrate("pr-1", 1, 1), withdrawn("pr-1", 3, "draft")]
    report = build_report(REPO, shadow_history(history), {})
    assert report.comparisons[0].outcome is HumanOutcome.OPEN
    assert report.parity is None


def evidence(parity: float | None, decisions: int) -> Evidence:
    return Evidence(parity, decisions, 0, T0)


@pytest.mark.parametrize(
    ("requested", "cutover", "stored", "mode", "words"),
    [
        (Mode.SHADOW, CutoverConfig(min_parity=0.9), evidence(1.0, 50), Mode.SHADOW, "configured"),
        (Mode.LIVE, CutoverConfig(), None, Mode.LIVE, "no cutover bar"),
        (Mode.LIVE, CutoverConfig(min_parity=0.95), None, Mode.SHADOW, "not evaluated"),
        (
            Mode.LIVE,
            CutoverConfig(min_parity=0.95, min_decisions=20),
            evidence(0.96, 12),
            Mode.SHADOW,
            "12 compared decisions, 20 needed",
        ),
        (
            Mode.LIVE,
            CutoverConfig(min_parity=0.95, min_decisions=20),
            evidence(0.9, 40),
            Mode.SHADOW,
            "parity 90.0%, 95.0% needed",
        ),
        (Mode.LIVE, CutoverConfig(min_parity=0.5), evidence(None, 0), Mode.SHADOW, "no parity"),
        (
            Mode.LIVE,
            CutoverConfig(min_parity=0.95, min_decisions=20),
            evidence(0.95, 20),
            Mode.LIVE,
            "meets the bar",
        ),
        (
            Mode.LIVE,
            CutoverConfig(min_parity=0.95, min_decisions=20, accepted=True),
            evidence(0.1, 1),
            Mode.LIVE,
            "accepted",
        ),
    ],
)
def test_gate(
    requested: Mode, cutover: CutoverConfig, stored: Evidence | None, mode: Mode, words: str
) -> None:
    decision = gate(requested, cutover, stored)
    assert decision.mode is mode
    assert words in decision.reason
    assert decision.held_back == (requested is Mode.LIVE and mode is Mode.SHADOW)


def test_evidence_round_trips() -> None:
    stored = Evidence(0.75, 8, 2, T0)
    assert Evidence.from_dict(stored.to_dict()) == stored
