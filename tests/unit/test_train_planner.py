"""The train planner, one rule at a time, on values (mergebot/integrator/planner.py)."""

from __future__ import annotations

from dataclasses import replace

from mergebot.integrator.planner import (
    READY,
    Advance,
    Block,
    Build,
    CancelChecks,
    Car,
    Checks,
    Decision,
    Drop,
    Failure,
    Land,
    Member,
    NewCar,
    Recheck,
    Resize,
    Settle,
    Shrink,
    Snapshot,
    StartChecks,
    TakeOut,
    Verdict,
    Window,
    plan,
)
from mergebot.queue import Status

BASE = "b0"


def member(n: int) -> Member:
    return Member(f"pr-{n}:item", f"pr-{n}", f"sha{n}")


def car(n: int, parent: str | None, checks: Checks = Checks.NONE, **kw: object) -> Car:
    built: dict[str, object] = {}
    if parent is not None:
        built = {"commit": f"c{n}", "generation": 1, "on_base": parent == BASE}
    return replace(
        Car(f"pr-{n}:item", (member(n),)), parent=parent, checks=checks, **{**built, **kw}
    )  # type: ignore[arg-type]


def train(*states: Checks, base: str = BASE) -> tuple[Car, ...]:
    """Cars 1..n stacked on each other, with these check states."""
    cars = []
    parent = base
    for n, state in enumerate(states, start=1):
        cars.append(car(n, parent, state))
        parent = f"c{n}"
    return tuple(cars)


def snap(cars: tuple[Car, ...] = (), *queued: int, **kw: object) -> Snapshot:
    fields: dict[str, object] = {"base_tip": BASE, "window": Window(3, maximum=8)}
    fields.update(kw)
    return Snapshot(cars=cars, queue=tuple(member(n) for n in queued), **fields)  # type: ignore[arg-type]


# -- fill ----------------------------------------------------------------------------------------


def test_an_empty_train_rechecks_the_candidates_that_would_get_a_car() -> None:
    assert plan(snap((), 1, 2, 3, 4)) == [Recheck(("pr-1:item", "pr-2:item", "pr-3:item"))]


def test_ready_candidates_get_cars_up_to_the_window_in_queue_order() -> None:
    ready = {f"pr-{n}:item": READY for n in (1, 2, 3, 4)}
    actions = plan(snap((), 1, 2, 3, 4, readiness=ready))
    assert actions == [NewCar(Car(f"pr-{n}:item", (member(n),))) for n in (1, 2, 3)]


def test_depth_one_takes_one_candidate_at_a_time() -> None:
    ready = {f"pr-{n}:item": READY for n in (1, 2)}
    assert plan(snap((), 1, 2, readiness=ready, window=Window(1))) == [
        NewCar(Car("pr-1:item", (member(1),)))
    ]
    running = train(Checks.RUNNING)
    assert plan(snap(running, 2, readiness=ready, window=Window(1))) == []


def test_a_candidate_not_ready_any_more_is_settled_and_never_blocked() -> None:
    readiness = {
        "pr-1:item": Verdict(Decision.NOT_READY, ("approval missing",)),
        "pr-2:item": Verdict(Decision.SUPERSEDED, ("newer head abc",)),
        "pr-3:item": Verdict(Decision.INTEGRATED),
        "pr-4:item": READY,
    }
    actions = plan(snap((), 1, 2, 3, 4, readiness=readiness, window=Window(1)))
    assert actions == [
        Settle("pr-1:item", Status.CANCELLED, "not ready any more: approval missing",
               ("approval missing",)),
        Settle("pr-2:item", Status.SUPERSEDED, "newer head abc", ("newer head abc",)),
        Settle("pr-3:item", Status.INTEGRATED, "found already on base"),
        NewCar(Car("pr-4:item", (member(4),))),
    ]  # fmt: skip


def test_a_block_already_in_the_log_is_recorded_not_rebuilt() -> None:
    verdict = Verdict(Decision.BLOCKED, ("checks_failed",), "pr-1-integration-blocked-sha1")
    actions = plan(snap((), 1, readiness={"pr-1:item": verdict}))
    assert actions == [
        Settle("pr-1:item", Status.BLOCKED, "integration recorded", ("checks_failed",),
               "pr-1-integration-blocked-sha1")
    ]  # fmt: skip


def test_git_unavailable_for_the_next_candidate_holds_the_queue_in_order() -> None:
    readiness = {"pr-1:item": Verdict(Decision.UNKNOWN), "pr-2:item": READY}
    assert plan(snap((), 1, 2, readiness=readiness)) == []


def test_failed_cars_waiting_for_their_turn_do_not_use_the_window() -> None:
    cars = (car(1, BASE, Checks.RUNNING), car(2, "c1", Checks.FAILED), car(3, "c1", Checks.RUNNING))
    assert plan(snap(cars, 4, readiness={"pr-4:item": READY})) == [
        NewCar(Car("pr-4:item", (member(4),)))
    ]


# -- building and checks ---------------------------------------------------------------------------


def test_cars_are_built_one_by_one_each_on_the_one_before() -> None:
    first = Car("pr-1:item", (member(1),))
    second = Car("pr-2:item", (member(2),))
    assert plan(snap((first, second))) == [Build("pr-1:item", BASE, True)]
    built = car(1, BASE)
    assert plan(snap((built, second))) == [Build("pr-2:item", "c1", False)]


def test_built_cars_have_their_checks_started_together() -> None:
    assert plan(snap(train(Checks.NONE, Checks.NONE))) == [
        StartChecks("pr-1:item"),
        StartChecks("pr-2:item"),
    ]


def test_a_car_that_adds_nothing_needs_no_checks_and_lands_with_its_parent() -> None:
    cars = (car(1, BASE, Checks.PASSED), car(2, "c1", commit="c1"))
    assert plan(snap(cars)) == [Advance("pr-2:item", BASE, "c1", ("pr-1:item", "pr-2:item"))]
    landed = plan(snap(cars, contained=frozenset({"c1"})))
    assert landed == [Land("pr-1:item", BASE, "c1"), Land("pr-2:item", "c1", "c1")]


# -- advancing -------------------------------------------------------------------------------------


def test_base_moves_to_the_furthest_car_whose_checks_and_all_earlier_ones_passed() -> None:
    cars = train(Checks.PASSED, Checks.PASSED, Checks.RUNNING)
    assert plan(snap(cars)) == [Advance("pr-2:item", BASE, "c2", ("pr-1:item", "pr-2:item"))]


def test_a_passed_car_behind_a_running_one_waits() -> None:
    assert plan(snap(train(Checks.RUNNING, Checks.PASSED))) == []


def test_a_hold_keeps_base_where_it_is_but_the_train_goes_on() -> None:
    cars = train(Checks.PASSED, Checks.NONE)
    actions = plan(snap(cars, 3, hold="frozen: release", readiness={"pr-3:item": READY}))
    assert actions == [NewCar(Car("pr-3:item", (member(3),))), StartChecks("pr-2:item")]


def test_cars_on_base_are_landed_in_order_and_an_adaptive_window_grows() -> None:
    cars = train(Checks.PASSED, Checks.PASSED, Checks.RUNNING)
    actions = plan(
        snap(cars, contained=frozenset({"c1", "c2"}), window=Window(2, adaptive=True, maximum=3))
    )
    assert actions == [Land("pr-1:item", BASE, "c1"), Land("pr-2:item", "c1", "c2"), Resize(3)]


# -- failures --------------------------------------------------------------------------------------


def test_a_failed_head_is_blocked_and_an_adaptive_window_halves() -> None:
    failed = car(1, BASE, Checks.FAILED, failure=Failure("checks_failed", {"message": "red"}))
    actions = plan(snap((failed,), window=Window(6, adaptive=True)))
    assert actions == [Block("pr-1:item", "checks_failed", {"message": "red"}), Resize(3)]


def test_a_conflict_blocks_without_shrinking_the_window() -> None:
    clash = car(1, BASE, commit=None, failure=Failure("merge_conflict", {"files": ["a"]}))
    actions = plan(snap((clash,), window=Window(6, adaptive=True)))
    assert actions == [Block("pr-1:item", "merge_conflict", {"files": ["a"]})]


def test_cars_behind_a_failed_car_are_rebuilt_without_it_and_cars_before_are_untouched() -> None:
    cars = train(Checks.RUNNING, Checks.FAILED, Checks.RUNNING)
    assert plan(snap(cars)) == [CancelChecks("pr-3:item"), Build("pr-3:item", "c1", False)]


def test_a_failed_car_behind_the_head_waits_until_everything_ahead_landed() -> None:
    cars = (car(1, BASE, Checks.RUNNING), car(2, "c1", Checks.FAILED), car(3, "c1", Checks.PASSED))
    assert plan(snap(cars)) == []
    cars = (car(1, BASE, Checks.PASSED), *cars[1:])
    assert plan(snap(cars)) == [Advance("pr-1:item", BASE, "c1", ("pr-1:item",))]
    after = plan(snap(cars, base_tip="c1", contained=frozenset({"c1"})))
    assert after == [Land("pr-1:item", BASE, "c1")]
    assert plan(snap(cars[1:], base_tip="c1")) == [Block("pr-2:item", "checks_failed", {})]
    assert plan(snap(cars[2:], base_tip="c1")) == [Advance("pr-3:item", "c1", "c3", ("pr-3:item",))]


def test_a_failed_car_is_tested_again_when_a_car_ahead_of_it_fails() -> None:
    cars = (car(1, BASE, Checks.FAILED), car(2, "c1", Checks.FAILED))
    # Car 2 failed on top of car 1, which failed too: it is tested again without car 1.
    assert plan(snap(cars)) == [Build("pr-2:item", BASE, True)]
    rebuilt = (cars[0], car(2, BASE, Checks.NONE))
    assert plan(snap(rebuilt)) == [Block("pr-1:item", "checks_failed", {})]


def test_base_moved_by_someone_else_rebuilds_every_car() -> None:
    cars = train(Checks.PASSED, Checks.RUNNING)
    actions = plan(snap(cars, base_tip="theirs"))
    assert actions == [Build("pr-1:item", "theirs", True, base_moved=True)]


def test_base_moving_too_often_blocks_with_push_rejected() -> None:
    cars = (car(1, BASE, Checks.PASSED, base_moves=3),)
    [action] = plan(snap(cars, base_tip="theirs"))
    assert isinstance(action, Block)
    assert action.reason == "push_rejected"
    assert "gave up after 3 rebuilds" in action.details["message"]


# -- members taken out -----------------------------------------------------------------------------


def test_a_withdrawn_member_is_taken_out_its_checks_stopped_and_cars_behind_rebuilt() -> None:
    cars = train(Checks.RUNNING, Checks.RUNNING, Checks.RUNNING)
    cancelled = {"pr-2:item": Verdict(Decision.NOT_READY, ("withdrawn: cancelled",))}
    actions = plan(snap(cars, readiness=cancelled))
    assert actions == [
        CancelChecks("pr-2:item"),
        TakeOut("pr-2:item", "pr-2:item", Status.CANCELLED,
                "taken out of the train: withdrawn: cancelled", ("withdrawn: cancelled",)),
        Drop("pr-2:item"),
    ]  # fmt: skip
    rest = (cars[0], cars[2])
    assert plan(snap(rest, readiness=cancelled)) == [
        CancelChecks("pr-3:item"),
        Build("pr-3:item", "c1", False),
    ]


def test_a_superseded_member_ends_superseded() -> None:
    verdict = Verdict(Decision.SUPERSEDED, ("superseded by sha9",))
    actions = plan(snap(train(Checks.PASSED), readiness={"pr-1:item": verdict}))
    assert actions[0] == TakeOut(
        "pr-1:item", "pr-1:item", Status.SUPERSEDED, "superseded by sha9", ("superseded by sha9",)
    )
    assert actions[1] == Drop("pr-1:item")


def test_a_removed_member_of_a_batch_leaves_the_rest_to_be_rebuilt() -> None:
    batch = replace(car(1, BASE, Checks.RUNNING), members=(member(1), member(2)))
    gone = {"pr-2:item": Verdict(Decision.NOT_READY, ("closed",))}
    actions = plan(snap((batch,), readiness=gone))
    assert actions[-1] == Shrink("pr-1:item", (member(1),))


def test_a_landed_car_is_landed_even_if_its_member_was_withdrawn_meanwhile() -> None:
    cancelled = {"pr-1:item": Verdict(Decision.NOT_READY, ("closed",))}
    actions = plan(snap(train(Checks.PASSED), contained=frozenset({"c1"}), readiness=cancelled))
    assert actions == [Land("pr-1:item", BASE, "c1")]


def test_a_withdrawal_is_honoured_before_base_moves() -> None:
    cancelled = {"pr-1:item": Verdict(Decision.NOT_READY, ("closed",))}
    actions = plan(snap(train(Checks.PASSED, Checks.PASSED), readiness=cancelled))
    assert not any(isinstance(a, Advance) for a in actions)
    assert isinstance(actions[0], TakeOut)


def test_window_rules() -> None:
    assert Window(8, adaptive=True, maximum=8).after_landing() == 8
    assert Window(1, adaptive=True).after_failure() == 1
    assert Window(5, adaptive=True).after_failure() == 2
    assert Window(4).after_landing() == 4
    assert Window(4).after_failure() == 4
