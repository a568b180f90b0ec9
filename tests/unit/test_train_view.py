"""The train as status, the queue API and the dashboard show it (mergebot/integrator/view.py)."""

from __future__ import annotations

import json

from mergebot.integrator.view import placement, stacked_on, train_view


def published(window: int = 2, seconds: list[float] | None = None) -> dict[str, str]:
    cars = [
        {"position": 1, "key": "a", "members": [{"slug": "pr-1", "sha": "s1"}], "parent": "b0",
         "on_base": True, "commit": "c1", "branch": "mergebot/integration/pr-1",
         "checks": "running", "generation": 1},
        {"position": 2, "key": "b", "members": [{"slug": "pr-2", "sha": "s2"}], "parent": "c1",
         "on_base": False, "commit": "c2", "branch": "mergebot/integration/pr-2",
         "checks": "passed", "generation": 2},
    ]  # fmt: skip
    state = {"window": window, "cars": cars, "hold": None}
    return {"state": json.dumps(state), "check_seconds": json.dumps(seconds or [60, 120, 90])}


def test_cars_show_what_they_are_stacked_on() -> None:
    train = train_view(published(), depth=2, max_depth=8, adaptive=False, held=True)
    assert [(c["slugs"], c["stacked_on"], c["checks"], c["attempt"]) for c in train["cars"]] == [
        (["pr-1"], "base", "running", 1),
        (["pr-2"], "pr-1", "passed", 2),
    ]
    assert train["check_seconds"] == 90
    assert train["window"] == 2


def test_a_car_stands_on_base_on_the_car_of_its_parent_or_on_the_car_before_it() -> None:
    labels = {"c1": "pr-1", "c2": "pr-2, pr-3"}
    assert stacked_on("b0", True, labels, "pr-2, pr-3") == "base"  # built on the base tip
    assert stacked_on(None, False, labels, "pr-2, pr-3") == "base"  # not built yet
    assert stacked_on("c1", False, labels, "pr-2, pr-3") == "pr-1"  # the car behind a failed one
    assert stacked_on("zz", False, labels, "pr-2, pr-3") == "pr-2, pr-3"
    assert stacked_on("zz", False, {}, None) == "base"


def test_an_adaptive_window_is_the_one_the_holder_uses() -> None:
    train = train_view(published(window=5), depth=1, max_depth=8, adaptive=True, held=True)
    assert train["window"] == 5
    fixed = train_view(published(window=5), depth=3, max_depth=8, adaptive=False, held=True)
    assert fixed["window"] == 3


def test_without_a_lease_holder_nothing_is_in_flight() -> None:
    train = train_view(published(), depth=2, max_depth=8, adaptive=False, held=False)
    assert train["cars"] == []
    assert train_view({}, depth=1, max_depth=8, adaptive=False, held=True)["cars"] == []
    assert (
        train_view({"state": "not json"}, depth=1, max_depth=8, adaptive=False, held=True)[
            "check_seconds"
        ]
        is None
    )


def test_eta_is_check_time_times_cars_ahead_over_the_window() -> None:
    train = train_view(published(), depth=2, max_depth=8, adaptive=False, held=True)
    assert placement(train, "pr-2", None) == {
        "car": 2,
        "batch": None,
        "stacked_on": "pr-1",
        "eta_seconds": 90,
    }
    # Queued third: two cars in flight and two candidates before it, two cars at a time.
    assert placement(train, "pr-9", 3) == {
        "car": None,
        "batch": None,
        "stacked_on": None,
        "eta_seconds": 225,
    }
    assert placement(train, "pr-9", None)["eta_seconds"] is None


def test_a_batch_is_one_car_with_its_members_and_each_member_knows_its_batch() -> None:
    state = {
        "window": 1,
        "cars": [
            {
                "position": 1,
                "members": [{"slug": "pr-1", "sha": "a" * 40}, {"slug": "pr-2", "sha": "b" * 40}],
                "parent": "0" * 40,
                "on_base": True,
                "commit": "c" * 40,
                "checks": "running",
                "generation": 2,
                "bisection": {"batch": ["pr-1", "pr-2", "pr-3"]},
            }
        ],
    }
    train = train_view(
        {"state": json.dumps(state)}, depth=1, max_depth=8, adaptive=False, held=True
    )
    [car] = train["cars"]
    assert (car["slugs"], car["bisection"]) == (["pr-1", "pr-2"], ["pr-1", "pr-2", "pr-3"])
    assert placement(train, "pr-2", None)["batch"] == ["pr-1", "pr-2"]
