"""The train as a record: what the runner writes before each step, so that the next lease holder
continues a bisection where a dead one left it (SPEC §11, §13).

Without it a crash sends every member back to the queue and a red batch is formed, checked and
split again from the start. With it recovery rebuilds the same cars: the halves of a bisection
with what each remembers of the red tree, and every verdict that did not need the dead holder's
processes — a car that failed (its checks, a conflict, known red) stays failed on the parent it
failed on. What those processes were doing is not trusted: running or passed checks are run
again on a fresh build (a passed car that had not landed yet is checked once more), so base
still only moves to a commit this holder saw pass. Pure: text in, cars out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mergebot.integrator.planner import Bisection, Car, Checks, Failure, Member

VERSION = 1


def dump(cars: Sequence[Car]) -> str:
    """The train as JSON (the record's one value)."""
    return json.dumps({"version": VERSION, "cars": [_car(c) for c in cars]}, sort_keys=True)


def load(text: str | None, in_progress: Iterable[str]) -> list[Car]:
    """The cars of a bisection to continue with (`_bisection`): recorded members whose item is
    still `in_progress` (the others were finished by recovery), each car as a fresh build unless
    it had failed. A record
    that cannot be read is no record (its members go back to the queue, as before it existed)."""
    try:
        data = json.loads(text or "{}")
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return []
        cars = [_restore(raw) for raw in data.get("cars", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
    alive = set(in_progress)
    out: list[Car] = []
    for car in _bisection(cars):
        members = tuple(m for m in car.members if m.item_id in alive)
        if not members:
            continue
        if members != car.members:  # some finished: what is left is a new tree, to be checked
            out.append(car.rebuilt(members=members))
        elif car.failed:
            out.append(car)
        else:
            out.append(car.rebuilt())
    return out


def _bisection(cars: Sequence[Car]) -> list[Car]:
    """The cars a bisection is made of: the leading halves, or a red batch at the head waiting
    to be split. The cars behind them go back to the queue, as every car did before records."""
    if cars and not cars[0].bisect and not (cars[0].failed and len(cars[0].members) > 1):
        return []
    head = [cars[0]] if cars and cars[0].bisect is None else []
    rest = cars[len(head) :]
    run: list[Car] = []
    for car in rest:
        if car.bisect is None:
            break
        run.append(car)
    return head + run


def _car(car: Car) -> dict[str, Any]:
    failed = car.failed
    return {
        "key": car.key,
        "members": [[m.item_id, m.slug, m.sha, m.ready_at] for m in car.members],
        "generation": car.generation,
        "base_moves": car.base_moves,
        # Only a failure outlives the holder that saw it; the rest is rebuilt.
        "parent": car.parent if failed else None,
        "on_base": car.on_base and failed,
        "commit": car.commit if failed else None,
        "failure": _failure(car.failure or Failure("checks_failed")) if failed else None,
        "bisect": _bisect(car.bisect) if car.bisect is not None else None,
    }


def _failure(failure: Failure) -> dict[str, Any]:
    return {"reason": failure.reason, "details": dict(failure.details)}


def _bisect(bisect: Bisection) -> dict[str, Any]:
    return {
        "batch": list(bisect.batch),
        "failure": _failure(bisect.failure),
        "red_after": list(bisect.red_after),
        "red_on": bisect.red_on,
        "beside": bisect.beside,
    }


def _restore(raw: Mapping[str, Any]) -> Car:
    members = tuple(
        Member(str(i), str(slug), str(sha), float(at)) for i, slug, sha, at in raw["members"]
    )
    failure = _restore_failure(raw["failure"]) if raw.get("failure") else None
    bisect = raw.get("bisect")
    return Car(
        key=str(raw["key"]),
        members=members,
        generation=int(raw.get("generation", 0)),
        parent=raw.get("parent") if failure else None,
        on_base=bool(raw.get("on_base")) and failure is not None,
        commit=raw.get("commit") if failure else None,
        checks=Checks.FAILED if failure else Checks.NONE,
        failure=failure,
        base_moves=int(raw.get("base_moves", 0)),
        bisect=Bisection(
            tuple(str(s) for s in bisect["batch"]),
            _restore_failure(bisect["failure"]),
            tuple(str(i) for i in bisect["red_after"]),
            bisect.get("red_on"),
            bool(bisect.get("beside")),
        )
        if bisect
        else None,
    )


def _restore_failure(raw: Mapping[str, Any]) -> Failure:
    return Failure(str(raw["reason"]), dict(raw.get("details") or {}))
