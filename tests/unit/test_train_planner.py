"""The train planner, one rule at a time, on values (mergebot/integrator/planner.py)."""

from __future__ import annotations

from dataclasses import replace

from mergebot.integrator.planner import (
    READY,
    Advance,
    Batching,
    Bisect,
    Bisection,
    Block,
    Build,
    CancelChecks,
    Car,
    Checks,
    Decision,
    Drop,
    Failure,
    KnownRed,
    Land,
    Member,
    Merge,
    NewCar,
    Promote,
    Recheck,
    Resize,
    Settle,
    Shrink,
    Snapshot,
    StartChecks,
    TakeOut,
    Verdict,
    Window,
    batch_wait,
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
    fields["queue"] = tuple(member(n) for n in queued)
    fields.update(kw)
    return Snapshot(cars=cars, **fields)  # type: ignore[arg-type]


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
    built = car(1, BASE, Checks.RUNNING)
    assert plan(snap((built, second))) == [Build("pr-2:item", "c1", False)]


def test_a_built_car_starts_its_checks_while_the_cars_behind_it_are_built() -> None:
    """With a window of 8 the head's checks do not wait for seven builds behind it."""
    second, third = Car("pr-2:item", (member(2),)), Car("pr-3:item", (member(3),))
    built = car(1, BASE)
    assert plan(snap((built, second, third))) == [
        StartChecks("pr-1:item"),
        Build("pr-2:item", "c1", False),
    ]
    running = car(1, BASE, Checks.RUNNING)
    assert plan(snap((running, car(2, "c1"), third))) == [
        StartChecks("pr-2:item"),
        Build("pr-3:item", "c2", False),
    ]


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


# -- batches and bisection -----------------------------------------------------------------------


def batch_car(key: int, members: tuple[int, ...], parent: str | None, **kw: object) -> Car:
    built: dict[str, object] = {}
    if parent is not None:
        built = {"commit": f"c{key}", "generation": 1, "on_base": parent == BASE}
    car_ = Car(f"pr-{members[0]}:item", tuple(member(n) for n in members))
    return replace(car_, parent=parent, **{**built, **kw})  # type: ignore[arg-type]


RED = Failure("checks_failed", {"checks": [{"name": "pytest", "state": "failed"}]})


def test_queued_candidates_are_batched_in_queue_order_up_to_max_size() -> None:
    ready = {f"pr-{n}:item": READY for n in range(1, 7)}
    actions = plan(snap((), 1, 2, 3, 4, 5, 6, readiness=ready, batch=Batching(4)))
    assert actions == [
        NewCar(Car("pr-1:item", tuple(member(n) for n in (1, 2, 3, 4)))),
        NewCar(Car("pr-5:item", (member(5), member(6)))),
    ]


def test_batching_rechecks_enough_candidates_for_full_batches() -> None:
    window = Window(1)
    actions = plan(snap((), *range(1, 7), batch=Batching(4), window=window))
    assert actions == [Recheck(tuple(f"pr-{n}:item" for n in (1, 2, 3, 4)))]


def test_a_short_batch_waits_for_more_candidates_up_to_wait_seconds() -> None:
    queued = (Member("pr-1:item", "pr-1", "sha1", ready_at=100.0),)
    fields = {
        "readiness": {"pr-1:item": READY},
        "batch": Batching(4, wait_seconds=30),
        "queue": queued,
    }
    assert plan(snap(now=110.0, **fields)) == []
    assert batch_wait(snap(now=110.0, **fields)) == 20.0
    assert plan(snap(now=130.0, **fields)) == [NewCar(Car("pr-1:item", queued))]
    # A full batch never waits.
    full = {**fields, "batch": Batching(1, wait_seconds=30)}
    assert plan(snap(now=110.0, **full)) == [NewCar(Car("pr-1:item", queued))]


def test_a_red_batch_at_the_head_is_split_in_halves_that_remember_the_red_tree() -> None:
    red = batch_car(1, (1, 2, 3, 4, 5), BASE, checks=Checks.FAILED, failure=RED)
    [action] = plan(snap((red,), window=Window(1)))
    assert isinstance(action, Bisect)
    left, right = action.halves
    assert [m.slug for m in left.members] == ["pr-1", "pr-2", "pr-3"]
    assert [m.slug for m in right.members] == ["pr-4", "pr-5"]
    batch = ("pr-1", "pr-2", "pr-3", "pr-4", "pr-5")
    assert left.bisect == Bisection(batch, RED)
    assert right.bisect == Bisection(batch, RED, ("pr-1:item", "pr-2:item", "pr-3:item"), BASE)
    assert not left.built
    assert not right.built


def test_only_the_probe_is_checked_and_nothing_behind_it() -> None:
    bisect = Bisection(("pr-1", "pr-2", "pr-3", "pr-4"), RED)
    left = batch_car(1, (1, 2), BASE, bisect=bisect)
    right = batch_car(3, (3, 4), "c1", bisect=replace(bisect, red_after=("pr-1:item", "pr-2:item")))
    behind = car(5, "c3")
    assert plan(snap((left, right, behind))) == [StartChecks(left.key)]


def test_the_half_behind_a_green_half_is_known_red_without_a_check() -> None:
    bisect = Bisection(("pr-1", "pr-2", "pr-3", "pr-4"), RED)
    left = batch_car(1, (1, 2), BASE, bisect=bisect, checks=Checks.PASSED)
    right = batch_car(
        3, (3, 4), "c1", bisect=replace(bisect, red_after=("pr-1:item", "pr-2:item"), red_on=BASE)
    )
    assert plan(snap((left, right))) == [KnownRed(right.key, "c1", RED)]
    # Not when the green half stood elsewhere (base moved): then it is a new tree, checked.
    moved = replace(right.bisect, red_on="elsewhere")  # type: ignore[arg-type]
    assert KnownRed(right.key, "c1", RED) not in plan(snap((left, replace(right, bisect=moved))))


def test_a_culprit_is_blocked_naming_its_batch_and_the_halves_behind_it_merge() -> None:
    bisect = Bisection(("pr-1", "pr-2", "pr-3", "pr-4"), RED)
    culprit = batch_car(1, (1,), BASE, bisect=bisect, checks=Checks.FAILED, failure=RED)
    two = batch_car(2, (2,), BASE, bisect=replace(bisect, red_after=("pr-1:item",), red_on=BASE))
    rest = batch_car(3, (3, 4), "c2", bisect=bisect)
    actions = plan(snap((culprit, two, rest)))
    block, merge = actions
    assert block == Block(
        culprit.key,
        "checks_failed",
        {**RED.details, "bisection": {"batch": list(bisect.batch), "isolated": ["pr-1"]}},
    )
    assert isinstance(merge, Merge)
    assert merge.keys == (two.key, rest.key)
    assert [m.slug for m in merge.car.members] == ["pr-2", "pr-3", "pr-4"]
    assert merge.car.bisect is not None
    assert merge.car.bisect.red_after == ()


def test_a_batch_that_failed_for_something_else_than_its_content_is_blocked_whole() -> None:
    missing = Failure("checks_missing", {"missing": ["ci"]})
    red = batch_car(1, (1, 2), BASE, checks=Checks.FAILED, failure=missing)
    assert plan(snap((red,))) == [Block(red.key, "checks_missing", {"missing": ["ci"]})]


def test_nothing_behind_a_red_batch_waiting_for_its_turn_is_checked() -> None:
    ahead = car(1, BASE, Checks.RUNNING)
    red = batch_car(2, (2, 3), "c1", checks=Checks.FAILED, failure=RED)
    behind = car(4, "c1")  # rebuilt on the car before the red batch, as rule 3 does
    assert plan(snap((ahead, red, behind))) == []


# -- concurrent halves (pipeline.depth > 1) -----------------------------------------------------

BATCH4 = ("pr-1", "pr-2", "pr-3", "pr-4")


def halves(left: Checks, right: Checks, **right_kw: object) -> tuple[Car, Car]:
    """Halves of a red batch of four, both built on base: R beside L."""
    bisect = Bisection(BATCH4, RED)
    beside = replace(bisect, red_after=("pr-1:item", "pr-2:item"), red_on=BASE, beside=True)
    left_car = batch_car(1, (1, 2), BASE, bisect=bisect, checks=left)
    right_car = batch_car(3, (3, 4), BASE, bisect=beside, checks=right, **right_kw)
    return left_car, right_car


def test_at_depth_above_one_the_second_half_stands_beside_the_first() -> None:
    red = batch_car(1, (1, 2, 3, 4), BASE, checks=Checks.FAILED, failure=RED)
    [action] = plan(snap((red,), window=Window(2)))
    assert isinstance(action, Bisect)
    left, right = action.halves
    assert right.bisect == Bisection(BATCH4, RED, ("pr-1:item", "pr-2:item"), BASE, beside=True)
    assert left.bisect == Bisection(BATCH4, RED)
    # Built on the same parent as the first half, not on its commit.
    unbuilt_right = replace(right, bisect=right.bisect)
    built_left = batch_car(1, (1, 2), BASE, bisect=left.bisect)
    assert plan(snap((built_left, unbuilt_right))) == [Build(right.key, BASE, True)]
    # An adaptive window that halves to 1 on this failure bisects one half after the other.
    [bisect, resize] = plan(snap((red,), window=Window(2, adaptive=True)))
    assert isinstance(bisect, Bisect)
    assert not bisect.halves[1].beside
    assert resize == Resize(1)


def test_both_halves_are_checked_at_once_and_nothing_behind_them() -> None:
    left, right = halves(Checks.NONE, Checks.NONE)
    behind = car(5, "c3")
    assert plan(snap((left, right, behind))) == [StartChecks(left.key), StartChecks(right.key)]
    # The window bounds how many run at once.
    assert plan(snap((left, right, behind), window=Window(1, maximum=8))) == [StartChecks(left.key)]


def test_a_green_first_half_lands_and_its_sibling_is_known_red_on_it() -> None:
    for state in (Checks.RUNNING, Checks.PASSED, Checks.FAILED):
        left, right = halves(
            Checks.PASSED, state, **({"failure": RED} if state is Checks.FAILED else {})
        )
        stop = [CancelChecks(right.key)] if state is Checks.RUNNING else []
        assert plan(snap((left, right))) == [*stop, KnownRed(right.key, "c1", RED)]
    known = right.known_red("c1", RED)
    assert known.parent == "c1"
    assert known.failed
    assert not known.beside
    # Stacked on the green half now: the green half lands, then the red one is bisected.
    assert plan(snap((left, known))) == [Advance(left.key, BASE, "c1", (left.key,))]


def test_a_red_first_half_waits_for_its_sibling_then_a_green_sibling_lands_first() -> None:
    left, right = halves(Checks.FAILED, Checks.RUNNING, failure=None)
    left = replace(left, failure=RED)
    assert plan(snap((left, right))) == []
    right = replace(right, checks=Checks.PASSED)
    promote, bisect = plan(snap((left, right)))
    assert promote == Promote(right.key)
    assert isinstance(bisect, Bisect)
    assert bisect.key == left.key
    assert [[m.slug for m in h.members] for h in bisect.halves] == [["pr-1"], ["pr-2"]]
    assert bisect.halves[1].beside
    # Promoted: at the head, stacked on base, it lands; the halves are built on top of it.
    promoted = right.stacked()
    assert not promoted.beside
    assert promoted.bisect is not None
    assert promoted.bisect.red_after == ()
    one, two = bisect.halves
    assert plan(snap((promoted, one, two))) == [Build(one.key, "c3", False)]
    built_one = replace(one, parent="c3", commit="c1", generation=1)
    assert plan(snap((promoted, built_one, two))) == [Build(two.key, "c3", False)]


def test_two_red_halves_the_first_is_bisected_and_the_second_keeps_its_result() -> None:
    left, right = halves(Checks.FAILED, Checks.FAILED, failure=RED)
    left = replace(left, failure=RED)
    [bisect] = plan(snap((left, right)))
    assert isinstance(bisect, Bisect)
    one, two = bisect.halves
    built = (
        replace(one, parent=BASE, commit="c1", generation=1, on_base=True),
        replace(two, parent=BASE, commit="c2", generation=1, on_base=True),
    )
    # The red second half still stands on base, beside the new halves: nothing to rebuild.
    assert plan(snap((*built, right))) == [StartChecks(one.key), StartChecks(two.key)]


def test_halves_behind_a_green_car_they_are_not_known_red_on_are_merged_and_checked_once() -> None:
    bisect = Bisection(BATCH4, RED)
    # pr-1 was the culprit (blocked); pr-2 stood beside it, and the second half beside pr-2.
    two = batch_car(2, (2,), BASE, bisect=replace(bisect, red_after=("pr-1:item",), red_on=BASE,
                                                  beside=True), checks=Checks.PASSED)  # fmt: skip
    rest = batch_car(3, (3, 4), BASE, checks=Checks.RUNNING, bisect=replace(
        bisect, red_after=("pr-1:item", "pr-2:item"), red_on=BASE, beside=True))  # fmt: skip
    cancel, merge = plan(snap((two, rest)))
    assert cancel == CancelChecks(rest.key)
    assert isinstance(merge, Merge)
    assert merge.keys == (rest.key,)
    assert not merge.car.beside
    assert not merge.car.built
    # Landing first, then the merged car is built on it and checked.
    assert plan(snap((two, merge.car))) == [Build(merge.car.key, "c2", False)]


def test_a_withdrawn_member_of_a_half_leaves_its_sibling_where_it_stands() -> None:
    left, right = halves(Checks.RUNNING, Checks.RUNNING)
    gone = {"pr-1:item": Verdict(Decision.NOT_READY, ("withdrawn",))}
    actions = plan(snap((left, right), readiness=gone))
    assert actions[0] == CancelChecks(left.key)
    assert isinstance(actions[1], TakeOut)
    assert isinstance(actions[2], Shrink)
    shrunk = left.rebuilt(members=(member(2),))
    # The shrunk half is rebuilt on base; its sibling keeps running on base, untouched.
    assert plan(snap((shrunk, right), readiness=gone)) == [Build(shrunk.key, BASE, True)]


def test_a_single_half_red_beside_the_head_on_base_is_blocked_before_its_sibling_lands() -> None:
    bisect = Bisection(BATCH4, RED)
    one = batch_car(1, (1,), BASE, bisect=bisect, checks=Checks.PASSED)
    # Known red on pr-1 it is not (the split tree stood elsewhere): its own run on base decides.
    two = batch_car(2, (2,), BASE, checks=Checks.FAILED, failure=RED, bisect=replace(
        bisect, red_after=("pr-1:item",), red_on="elsewhere", beside=True))  # fmt: skip
    details = {**RED.details, "bisection": {"batch": list(BATCH4), "isolated": ["pr-2"]}}
    assert plan(snap((one, two))) == [Block(two.key, "checks_failed", details)]
    # Not once base moved under it: then its failure is not on the current base.
    assert Block(two.key, "checks_failed", details) not in plan(snap((one, two), base_tip="b1"))
