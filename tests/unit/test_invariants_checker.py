"""The SPEC §11 checker of the crash campaign must itself catch what it claims to: a checker that
never finds anything would make the campaign pass vacuously."""

from __future__ import annotations

from typing import Any

from tests.invariants import BaseUpdate, violations

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
CAND, OTHER = ("1" * 40, "2" * 40)
HISTORY = {B: A, C: B, D: A}  # child -> parent on base; D is not a descendant of B or C


def is_ancestor(old: str, new: str) -> bool:
    while new != old:
        if new not in HISTORY:
            return False
        new = HISTORY[new]
    return True


def parents(commit: str) -> list[str]:
    return [HISTORY[commit], CAND] if commit in HISTORY else []


def event(name: str, **payload: Any) -> dict[str, Any]:
    return {"id": f"{name}-{len(payload)}-{payload.get('sha', '')}", "name": name,
            "payload": {"repo": "acme/widgets", **payload}}  # fmt: skip


def ready(sha: str = CAND, slug: str = "pr-1") -> list[dict[str, Any]]:
    return [
        event("branch_pushed", branch=f"feature/{slug}", sha=sha),
        event("finalize_ready", slug=slug, branch=f"feature/{slug}", sha=sha),
        event("review_approved", slug=slug, sha=sha, reviewer_session_id="alice"),
    ]


def completed(main_after: str, sha: str = CAND, state: str = "passed") -> dict[str, Any]:
    return event("integration_completed", slug="pr-1", sha=sha, main_after=main_after,
                 checks=[{"name": "test", "state": state}])  # fmt: skip


def check(updates: list[BaseUpdate], events: list[dict[str, Any]], **kw: Any) -> list[str]:
    return violations(updates, events, is_ancestor=is_ancestor, parents=parents, **kw)


def test_a_clean_history_has_no_violation() -> None:
    assert check([BaseUpdate(A, B)], [*ready(), completed(B)]) == []


def test_each_broken_rule_is_named() -> None:
    assert "not a fast-forward" in " ".join(check([BaseUpdate(C, D)], [*ready(), completed(D)]))
    assert "does not start at" in " ".join(
        check([BaseUpdate(A, B), BaseUpdate(A, D)], [*ready(), completed(B), completed(D, OTHER)])
    )
    assert "no integration_completed reports" in " ".join(check([BaseUpdate(A, B)], ready()))
    assert "checks not passed" in " ".join(
        check([BaseUpdate(A, B)], [*ready(), completed(B, state="failed")])
    )
    unapproved = [e for e in ready() if e["name"] != "review_approved"]
    assert "without an approval" in " ".join(check([BaseUpdate(A, B)], [*unapproved, completed(B)]))
    twice = check([BaseUpdate(A, B), BaseUpdate(B, C)], [*ready(), completed(B), completed(C)])
    assert any("reported integrated 2 times" in f for f in twice)
    assert any("merged into base 2 times" in f for f in twice)
    assert "never ended" in " ".join(check([], ready()))
    assert "not in the event log" in " ".join(check([], [], acknowledged=["lost-1"]))


def test_every_candidate_of_a_batch_counts_and_a_blocked_culprit_must_stay_off_base() -> None:
    # One update moves base over two merge commits (a batch of two): both merged candidates
    # count, so a candidate merged again by a later update is caught.
    batch = {B: [A, CAND], C: [B, OTHER], D: [C, CAND]}

    def batch_parents(commit: str) -> list[str]:
        return batch.get(commit, [])

    def batch_ancestor(old: str, new: str) -> bool:
        return new == old or any(batch_ancestor(old, p) for p in batch.get(new, []))

    again = violations([BaseUpdate(A, C), BaseUpdate(C, D)], [*ready(), completed(C),
                       completed(D, OTHER)], is_ancestor=batch_ancestor,
                       parents=batch_parents)  # fmt: skip
    assert any(f"{CAND[:7]} was merged into base 2 times" in f for f in again)
    blocked = event("integration_blocked", slug="pr-2", sha=OTHER, reason="checks_failed")
    found = violations([BaseUpdate(A, C)], [*ready(), *ready(OTHER, "pr-2"), completed(C),
                       blocked], is_ancestor=batch_ancestor, parents=batch_parents)  # fmt: skip
    assert "pr-2 (2222222) was blocked but is on base" in found
