"""The train record (mergebot/integrator/record.py): what survives a crash of the holder."""

from __future__ import annotations

from dataclasses import replace

from mergebot.integrator import record
from mergebot.integrator.planner import Bisection, Car, Checks, Failure, Member

RED = Failure("checks_failed", {"checks": [{"name": "pytest", "state": "failed"}]})
BATCH = ("pr-1", "pr-2", "pr-3", "pr-4")


def member(n: int) -> Member:
    return Member(f"pr-{n}:item", f"pr-{n}", f"sha{n}", 100.0 + n)


def half(first: int, last: int, **kw: object) -> Car:
    car = Car(f"pr-{first}:item", tuple(member(n) for n in range(first, last + 1)), 2)
    return replace(car, **kw)  # type: ignore[arg-type]


IDS = [f"pr-{n}:item" for n in range(1, 7)]


def test_a_bisection_comes_back_with_its_halves_and_what_they_know() -> None:
    beside = Bisection(BATCH, RED, ("pr-1:item", "pr-2:item"), "base0", beside=True)
    left = half(1, 2, parent="base0", commit="c1", checks=Checks.RUNNING,
                bisect=Bisection(BATCH, RED))  # fmt: skip
    right = half(3, 4, parent="base0", commit="c3", checks=Checks.FAILED, failure=RED,
                 on_base=True, bisect=beside)  # fmt: skip
    behind = half(5, 6, parent="c3", commit="c5")
    cars = record.load(record.dump([left, right, behind]), IDS)
    # The running half is built and checked again; the red one stays red where it was red.
    assert cars == [left.rebuilt(), right]
    assert cars[1].failed
    assert cars[1].bisect == beside


def test_a_red_batch_waiting_to_be_split_comes_back_red() -> None:
    red = half(1, 4, parent="base0", commit="c1", checks=Checks.FAILED, failure=RED)
    assert record.load(record.dump([red]), IDS) == [replace(red, checks=Checks.FAILED)]


def test_members_finished_by_recovery_leave_and_what_is_left_is_checked_again() -> None:
    right = half(3, 4, parent="c1", failure=RED, bisect=Bisection(BATCH, RED, ("pr-1:item",),
                                                                  "base0"))  # fmt: skip
    [car] = record.load(record.dump([right]), ["pr-4:item"])
    assert car.members == (member(4),)
    assert not car.built
    assert car.bisect is not None
    assert car.bisect.red_after == ()  # not the tree known red any more


def test_a_train_without_a_bisection_goes_back_to_the_queue() -> None:
    plain = [half(1, 1, parent="base0", commit="c1", checks=Checks.PASSED), half(2, 2)]
    assert record.load(record.dump(plain), IDS) == []
    green_batch = half(1, 4, parent="base0", commit="c1", checks=Checks.RUNNING)
    assert record.load(record.dump([green_batch]), IDS) == []


def test_no_record_or_an_unreadable_one_is_no_bisection() -> None:
    assert record.load(None, IDS) == []
    assert record.load("not json", IDS) == []
    assert record.load('{"version": 99, "cars": []}', IDS) == []
    assert record.load('{"version": 1, "cars": [{"key": 1}]}', IDS) == []
