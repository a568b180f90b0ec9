"""The train as people see it (SPEC §9, §13): pure, from what the lease holder published.

The runner writes its train to `keys.train(repo, base)` after every step (`state`: the window
and each car; `check_seconds`: recent check durations). `train_view` turns that into the `train`
object of `mergebot status --json` and of the queue API, and `placement` gives each candidate its
car, what the car is stacked on, and an estimate of when it lands:

    eta = median(recent check durations) * (cars ahead + 1) / window

— a queued candidate at position p has every car in flight and the p - 1 candidates before it
ahead of it; with W cars checked at once, that many check runs pass in about T * ahead / W.
Without a lease holder nothing is in flight, whatever was published last.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def _load(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def train_view(
    published: Mapping[str, str], *, depth: int, max_depth: int, adaptive: bool, held: bool
) -> dict[str, Any]:
    """The `train` object: `window`, `depth`, `max_depth`, `adaptive`, `hold`,
    `check_seconds` (median of recent runs, or None), and `cars` in order, each with its
    `position`, `slugs`, `shas`, `stacked_on` (`base`, or the slug(s) of the car before it),
    `parent`, `commit`, `branch`, `checks` and `attempt`; `batch_wait_until` (ISO time, or None):
    a batch shorter than `batch.max_size` waits for more candidates until then."""
    state = _load(published.get("state"), {})
    state = state if isinstance(state, dict) else {}
    seconds = [float(s) for s in _load(published.get("check_seconds"), []) if _number(s)]
    raw_cars = state.get("cars") if held else []
    cars: list[dict[str, Any]] = []
    previous: str | None = None
    commits: dict[str, str] = {}
    for raw in raw_cars if isinstance(raw_cars, list) else []:
        members = raw.get("members") or []
        slugs = [str(m.get("slug")) for m in members]
        parent = raw.get("parent")
        stacked = stacked_on(parent, bool(raw.get("on_base")), commits, previous)
        car = {
            "position": int(raw.get("position") or len(cars) + 1),
            "slugs": slugs,
            "shas": [str(m.get("sha")) for m in members],
            "stacked_on": stacked,
            "parent": parent,
            "commit": raw.get("commit"),
            "branch": raw.get("branch"),
            "checks": raw.get("checks"),
            "attempt": raw.get("generation"),
            # A half of a red batch being bisected: the batch's slugs.
            "bisection": _bisection(raw.get("bisection")),
        }
        cars.append(car)
        label = car_label(slugs)
        if raw.get("commit"):
            commits[str(raw["commit"])] = label
        previous = label
    window = state.get("window") if held and adaptive else None
    return {
        "window": int(window) if isinstance(window, int | float) else depth,
        "depth": depth,
        "max_depth": max_depth,
        "adaptive": adaptive,
        "hold": state.get("hold") if held else None,
        "check_seconds": round(statistics.median(seconds), 1) if seconds else None,
        "cars": cars,
        "batch_wait_until": str(wait) if held and (wait := state.get("batch_wait_until")) else None,
    }


def car_label(slugs: Sequence[str]) -> str:
    """How a car is named where another car stands on it: its slugs."""
    return ", ".join(slugs)


def stacked_on(
    parent: object, on_base: bool, labels: Mapping[str, str], previous: str | None
) -> str:
    """What a car stands on, as people read it: `base` (built on the base tip, or not built
    yet), else the car whose commit is its parent (`labels`: commit -> car label of the cars
    before it), else the car before it."""
    if on_base or parent is None:
        return "base"
    return labels.get(str(parent), previous or "base")


def _bisection(raw: object) -> list[str] | None:
    batch = raw.get("batch") if isinstance(raw, dict) else None
    return [str(s) for s in batch] if isinstance(batch, list) else None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def placement(train: Mapping[str, Any], slug: str, position: int | None) -> dict[str, Any]:
    """A candidate's place in the train: `car` (its car's position, or None), `batch` (the slugs
    of its car when the car is a batch, else None), `stacked_on`, and `eta_seconds` (None
    without recent check durations, or for a candidate not in the train or the queue)."""
    cars = train.get("cars") or []
    seconds = train.get("check_seconds")
    window = max(int(train.get("window") or 1), 1)
    for car in cars:
        if slug in car.get("slugs", []):
            eta = seconds * car["position"] / window if seconds is not None else None
            slugs = list(car.get("slugs") or [])
            return {
                "car": car["position"],
                "batch": slugs if len(slugs) > 1 else None,
                "stacked_on": car["stacked_on"],
                "eta_seconds": round(eta) if eta is not None else None,
            }
    if position is None or seconds is None:
        return {"car": None, "batch": None, "stacked_on": None, "eta_seconds": None}
    ahead = len(cars) + position - 1
    eta = round(seconds * (ahead + 1) / window)
    return {"car": None, "batch": None, "stacked_on": None, "eta_seconds": eta}
