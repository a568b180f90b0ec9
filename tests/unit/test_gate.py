"""May base move now? Freezes, windows and the base's health as values (mergebot.gate)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from mergebot.events import parse_event
from mergebot.gate import (
    Clearance,
    ClearanceState,
    FreezeState,
    HoldKind,
    WindowError,
    decide,
    freeze_state,
    parse_window,
)
from mergebot.readiness import RepoFacts, fold
from tests.factories import REPO, raw_event

# Wednesday 2026-11-25 10:00 UTC.
WED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SHA = "c" * 40


def facts_of(*events: dict[str, object]) -> FreezeState:
    facts = RepoFacts(repo=REPO)
    for raw in events:
        fold(facts, parse_event(raw).event)
    return freeze_state(facts.freezes, "main")


def frozen(minute: int, **kw: object) -> dict[str, object]:
    return raw_event("queue_frozen", at=WED.replace(minute=minute).isoformat(), **kw)


def unfrozen(minute: int, **kw: object) -> dict[str, object]:
    return raw_event("queue_unfrozen", at=WED.replace(minute=minute).isoformat(), **kw)


def test_an_open_base_has_no_hold() -> None:
    assert decide(FreezeState(), [], None, WED) is None


def test_a_freeze_holds_with_why_who_and_until_and_ends_by_itself() -> None:
    until = WED + timedelta(hours=2)
    state = facts_of(frozen(1, until=until.isoformat()))
    hold = decide(state, [], None, WED)
    assert hold is not None
    assert (hold.kind, hold.reason, hold.by, hold.until) == (
        HoldKind.FROZEN, "release 2.4", "dana", until,
    )  # fmt: skip
    assert "until 2026-11-25T12:00+00:00" in hold.sentence()
    assert decide(state, [], None, until) is None


def test_unfreeze_wins_only_when_it_is_later_in_any_arrival_order() -> None:
    events = [frozen(1), unfrozen(2), frozen(3, reason="again")]
    for order in itertools.permutations(events):
        state = facts_of(*order)
        assert state.manual is not None
        assert state.manual.reason == "again"
    assert facts_of(frozen(1), unfrozen(2)).manual is None
    assert facts_of(unfrozen(2), frozen(2)).manual is not None  # a tie: the freeze stands


def test_other_bases_do_not_count() -> None:
    assert facts_of(frozen(1, base="release")).manual is None


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 11, 28, 0, 0, tzinfo=UTC), True),  # Saturday 00:00: starts
        (datetime(2026, 11, 29, 23, 0, tzinfo=UTC), True),  # Sunday night
        (datetime(2026, 11, 30, 5, 59, tzinfo=UTC), True),  # Monday 05:59
        (datetime(2026, 11, 30, 6, 0, tzinfo=UTC), False),  # Monday 06:00: ended
        (datetime(2026, 11, 27, 23, 59, tzinfo=UTC), False),  # Friday night
        (WED, False),
    ],
)
def test_a_weekly_window_wraps_over_the_weekend(when: datetime, inside: bool) -> None:
    window = parse_window("Sat 00:00-Mon 06:00 UTC")
    assert window.contains(when) is inside
    hold = decide(FreezeState(), [window], None, when)
    assert (hold is not None) is inside
    if hold is not None:
        assert hold.kind is HoldKind.WINDOW
        assert hold.until == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
        assert hold.by == "configuration"


def test_a_daily_window_in_a_named_zone_wraps_over_midnight() -> None:
    window = parse_window("22:00-06:00 Europe/Berlin")  # UTC+1 in November
    assert window.contains(datetime(2026, 11, 25, 21, 30, tzinfo=UTC))
    assert window.contains(datetime(2026, 11, 26, 4, 59, tzinfo=UTC))
    assert not window.contains(datetime(2026, 11, 26, 5, 0, tzinfo=UTC))
    assert window.ends_after(datetime(2026, 11, 25, 21, 30, tzinfo=UTC)) == datetime(
        2026, 11, 26, 5, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("weekends", "is not a freeze window"),
        ("Sat 00:00-06:00 UTC", "on both sides"),
        ("Sam 00:00-Mon 06:00 UTC", "'Sam' is not a day"),
        ("Sat 24:00-Mon 06:00 UTC", "not a time of day"),
        ("Sat 00:00-Mon 06:00 Moon/Base", "not a time zone"),
        ("Sat 06:00-Sat 06:00 UTC", "starts when it ends"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(WindowError, match=says):
        parse_window(text)


def red(sha: str = SHA) -> Clearance:
    return Clearance(sha, ClearanceState.RED, "unit-tests", "exit 1", WED)


def test_a_red_base_holds_naming_the_check_and_sha_and_green_opens() -> None:
    hold = decide(FreezeState(), [], red(), WED)
    assert hold is not None
    assert (hold.kind, hold.sha, hold.check) == (HoldKind.RED_BASE, SHA, "unit-tests")
    assert hold.reason == "main is red: unit-tests failed on ccccccc"
    assert decide(FreezeState(), [], Clearance(SHA, ClearanceState.GREEN), WED) is None
    pending = decide(FreezeState(), [], Clearance(SHA, ClearanceState.PENDING, "ci"), WED)
    assert pending is not None
    assert pending.kind is HoldKind.BASE_PENDING


def test_a_persons_unfreeze_opens_a_red_base_for_that_sha_only() -> None:
    closed = frozen(1, kind="clearance", sha=SHA, check="unit-tests", by="mergebot")
    state = facts_of(closed, unfrozen(2))
    assert state.waived_sha == SHA
    assert decide(state, [], red(), WED) is None
    assert decide(state, [], red("d" * 40), WED) is not None
    # mergebot's own reopening (green) does not waive anything.
    assert facts_of(closed, unfrozen(2, kind="clearance", by="mergebot")).waived_sha is None


def test_mergebots_reopening_does_not_lift_a_persons_freeze() -> None:
    state = facts_of(frozen(1), unfrozen(2, kind="clearance", by="mergebot"))
    hold = decide(state, [], None, WED)
    assert hold is not None
    assert hold.kind is HoldKind.FROZEN


def test_a_persons_freeze_comes_before_a_window_and_a_red_base() -> None:
    window = parse_window("00:00-23:59 UTC")
    hold = decide(facts_of(frozen(1)), [window], red(), WED)
    assert hold is not None
    assert hold.kind is HoldKind.FROZEN
    hold = decide(FreezeState(), [window], red(), WED)
    assert hold is not None
    assert hold.kind is HoldKind.WINDOW
