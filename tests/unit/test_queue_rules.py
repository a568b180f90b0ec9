"""The queue's transition table is the one SPEC §5 gives; anything else is refused by name."""

from __future__ import annotations

import pytest

from mergebot.queue import FINAL, TRANSITIONS, InvalidTransitionError, Status, check_transition

ALLOWED = {
    ("queued", "in_progress"), ("queued", "integrated"), ("queued", "superseded"),
    ("queued", "cancelled"), ("in_progress", "integrated"), ("in_progress", "blocked"),
    ("in_progress", "superseded"), ("in_progress", "cancelled"), ("in_progress", "queued"),
    ("blocked", "queued"),
    ("blocked", "superseded"), ("blocked", "cancelled"),
}  # fmt: skip


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_transition_table(current: Status, target: Status) -> None:
    if (current.value, target.value) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransitionError) as info:
            check_transition(current, target)
        assert current.value in str(info.value)
        assert target.value in str(info.value)


def test_final_statuses_have_no_way_out() -> None:
    assert all(not TRANSITIONS[s] for s in FINAL)
