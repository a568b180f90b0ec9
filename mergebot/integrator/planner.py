"""The train planner: what the integrator does next, as values (SPEC §5, §6, §11, §13).

A *train* is the cars in flight for one (repo, base), in queue order. A *car* is one integration
attempt: its members (one candidate today; a list, so a batch fits later), its *parent* (the base
tip for the first car, the commit of the nearest car before it that has not failed otherwise),
its integration commit, and its checks. `plan(snapshot)` looks at the train, the queue, the base
tip, the readiness of the members and the window, and returns the next actions; the runner
(`runner.py`) records and performs them, then asks again. Nothing here does I/O, so every rule is
a unit test of values, and a property test drives it through random results, pushes, cancels and
restarts against a model of the invariants (`tests/unit/test_train_planner.py`).

The rules, in the order they are applied (the first that has something to do wins; the runner
performs its actions and plans again, so each answer is small and always about one state):

1. **Landed.** Leading cars whose commit base already contains (the runner's own fast-forward,
   or an answer lost on the way back) are `Land`ed, in order.
2. **Removed members.** A member withdrawn, superseded, no longer approved (or found on base by
   someone else's hand) is `TakeOut` of its car: its checks are cancelled, its item ends
   `cancelled` / `superseded` / `integrated`, and the car is rebuilt with what is left, or
   dropped when nothing is.
3. **Parents.** Each car must stand on the commit of the nearest car before it that has not
   failed (the base tip for the first). A car that stands elsewhere — base moved under it, a
   car ahead was taken out, failed or rebuilt — is rebuilt there (`Build`, its checks cancelled
   first). A car built straight on base that base moved under more than `max_base_moves` times
   is blocked with `push_rejected`, as a single candidate was before.
4. **Failure at the head.** The first car failed (conflict, checks, a refused base push): it is
   `Block`ed with its follow-up. A car that failed behind the head waits: the cars behind it
   were already rebuilt without it (rule 3), and it is blocked only once everything ahead of it
   landed — if a car ahead fails instead, it is rebuilt and tested again without that car, so a
   candidate is never blocked for someone else's change (Zuul's dependent pipeline does the same).
5. **Advance.** The longest run of cars from the head whose checks passed: base moves to the
   last of them by one compare-and-swap fast-forward (`Advance`). Each car's tree contains every
   car before it, so base is always exactly a tested tree. With a `hold` (a freeze, a red base),
   base does not move; everything else goes on.
6. **Fill.** While fewer cars than the window are in flight (failed ones waiting for their turn do
   not count: they use no CI), the next queued candidate gets a car (`Recheck` first when its
   readiness is not known this round; a candidate that is not ready any more is `Settle`d).
7. **Checks.** Every built car whose checks have not started gets `StartChecks`.

The window (`pipeline.depth`, or adaptive: one more after each landing up to `max_depth`, half
after a failure, floor 1) is an input; `Resize` tells the runner its next value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from mergebot.queue import Status


class Checks(StrEnum):
    """Where a car's checks are. After a restart nothing is `RUNNING`: the runner owns no
    process of a dead holder, so it reports such a car as `NONE` and the checks run again."""

    NONE = "none"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


class Decision(StrEnum):
    """A readiness re-check of one candidate (SPEC §4, §6 step 1), as the planner reads it."""

    BUILD = "build"  # still READY
    SUPERSEDED = "superseded"
    INTEGRATED = "integrated"  # its sha is on base already
    NOT_READY = "not_ready"  # withdrawn, unapproved, branch moved: back to waiting
    BLOCKED = "blocked"  # an integration_blocked for it is in the log already
    UNKNOWN = "unknown"  # git could not be asked


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[str, ...] = ()
    followup_id: str | None = None

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


READY = Verdict(Decision.BUILD)


@dataclass(frozen=True)
class Member:
    """One candidate of a car (its queue item)."""

    item_id: str
    slug: str
    sha: str


@dataclass(frozen=True)
class Failure:
    """Why a car failed: a `integration_blocked` reason and its details."""

    reason: str  # merge_conflict | checks_failed | checks_missing | checks_timeout | push_rejected
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Car:
    """One integration attempt in the train.

    `parent` None: not built yet. A built car has a `commit`, or a `failure` found while building
    (a conflict); a car whose candidate adds nothing to its parent has `commit == parent`.
    `on_base` says the car was built straight on the base tip (so a later base tip means base
    moved under it, not that a car ahead changed). `generation` grows at each rebuild.
    """

    key: str
    members: tuple[Member, ...]
    generation: int = 0
    parent: str | None = None
    on_base: bool = False
    commit: str | None = None
    checks: Checks = Checks.NONE
    failure: Failure | None = None
    base_moves: int = 0

    @property
    def built(self) -> bool:
        return self.parent is not None

    @property
    def failed(self) -> bool:
        return self.built and (self.failure is not None or self.checks is Checks.FAILED)

    @property
    def passed(self) -> bool:
        return self.built and self.failure is None and self.checks is Checks.PASSED

    @property
    def empty(self) -> bool:
        """Adds nothing to its parent: it needs no checks, and lands with its parent."""
        return self.commit is not None and self.commit == self.parent

    def rebuilt(self, **changes: Any) -> Car:
        """This car, to be built again (on a new parent, or with fewer members)."""
        return replace(
            self,
            parent=None,
            on_base=False,
            commit=None,
            checks=Checks.NONE,
            failure=None,
            **changes,
        )


@dataclass(frozen=True)
class Window:
    """How many cars may be in flight: `size` now; adaptive windows move within [1, maximum]."""

    size: int = 1
    adaptive: bool = False
    maximum: int = 8

    def after_landing(self) -> int:
        return min(self.size + 1, self.maximum) if self.adaptive else self.size

    def after_failure(self) -> int:
        return max(1, self.size // 2) if self.adaptive else self.size


@dataclass(frozen=True)
class Snapshot:
    """Everything the planner looks at.

    `contained`: which of the cars' commits (and members' shas) the base tip contains — the one
    git question the runner answers for it. `readiness`: the latest re-check of members and of
    queued candidates (a candidate missing here is assumed still ready when it is a member, and
    re-checked before it gets a car when it is queued). `hold`: a reason base may not move now
    (a freeze, a red base), or None.
    """

    cars: tuple[Car, ...]
    queue: tuple[Member, ...]
    base_tip: str
    contained: frozenset[str] = frozenset()
    readiness: Mapping[str, Verdict] = field(default_factory=dict)
    window: Window = field(default_factory=Window)
    hold: str | None = None
    max_base_moves: int = 3


# -- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recheck:
    """Fetch and re-check the readiness of these queued candidates before one gets a car."""

    item_ids: tuple[str, ...]


@dataclass(frozen=True)
class Settle:
    """A queued candidate is not ready any more: it ends without a car (never blocked, except
    when its block is in the log already)."""

    item_id: str
    to: Status
    cause: str
    reasons: tuple[str, ...] = ()
    followup_id: str | None = None


@dataclass(frozen=True)
class NewCar:
    """The queued candidate `member` gets a car at the end of the train (`queued → in_progress`)."""

    car: Car


@dataclass(frozen=True)
class Build:
    """Build (or rebuild) car `key` on `parent`; running checks of an older build are cancelled
    first. `on_base`: `parent` is the base tip. `base_moved`: base moved under the old build."""

    key: str
    parent: str
    on_base: bool
    base_moved: bool = False


@dataclass(frozen=True)
class StartChecks:
    key: str


@dataclass(frozen=True)
class CancelChecks:
    key: str


@dataclass(frozen=True)
class Advance:
    """Move base by compare-and-swap from `old` to car `key`'s commit `new`, landing `landing`
    (the cars from the head up to `key`, in order)."""

    key: str
    old: str
    new: str
    landing: tuple[str, ...]


@dataclass(frozen=True)
class Land:
    """Car `key` is on base: its members are `integrated` (base moved from `before` to `after`)."""

    key: str
    before: str
    after: str


@dataclass(frozen=True)
class Block:
    """Car `key` failed at the head of the train: its members are blocked with a follow-up."""

    key: str
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TakeOut:
    """Member `item_id` of car `key` leaves the train without landing (`to` is its final status)."""

    key: str
    item_id: str
    to: Status
    cause: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shrink:
    """Car `key` goes on with `members` only (the others were taken out); it is rebuilt."""

    key: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Drop:
    """Car `key` has no members left: it leaves the train."""

    key: str


@dataclass(frozen=True)
class Resize:
    window: int


Action = (
    Recheck
    | Settle
    | NewCar
    | Build
    | StartChecks
    | CancelChecks
    | Advance
    | Land
    | Block
    | TakeOut
    | Shrink
    | Drop
    | Resize
)

# Readiness decisions that take a member out of the train, and the status its item ends with.
_TAKEN_OUT = {
    Decision.SUPERSEDED: Status.SUPERSEDED,
    Decision.NOT_READY: Status.CANCELLED,
    Decision.INTEGRATED: Status.INTEGRATED,
}


def plan(snapshot: Snapshot) -> list[Action]:
    """The next actions for the train in `snapshot` (empty: wait for something to happen)."""
    for rule in (_landed, _removed, _parents, _head_failed):
        actions = rule(snapshot)
        if actions:
            return actions
    return _advance(snapshot) + _fill(snapshot) + _start_checks(snapshot)


def _landed(s: Snapshot) -> list[Action]:
    out: list[Action] = []
    for car in s.cars:
        if car.commit is None or car.parent is None or car.commit not in s.contained:
            break
        out.append(Land(car.key, car.parent, car.commit))
    if out and s.window.after_landing() != s.window.size:
        out.append(Resize(s.window.after_landing()))
    return out


def _removed(s: Snapshot) -> list[Action]:
    for car in s.cars:
        gone: list[tuple[Member, Verdict]] = []
        for member in car.members:
            verdict = s.readiness.get(member.item_id)
            if verdict is not None and verdict.decision in _TAKEN_OUT:
                gone.append((member, verdict))
        if not gone:
            continue
        out: list[Action] = [CancelChecks(car.key)] if car.checks is Checks.RUNNING else []
        for member, verdict in gone:
            to = _TAKEN_OUT[verdict.decision]
            cause = _takeout_cause(to, verdict)
            out.append(TakeOut(car.key, member.item_id, to, cause, verdict.reasons))
        left = tuple(m for m in car.members if m not in {g for g, _ in gone})
        out.append(Shrink(car.key, left) if left else Drop(car.key))
        return out
    return []


def _takeout_cause(to: Status, verdict: Verdict) -> str:
    match to:
        case Status.INTEGRATED:
            return f"found already on base: {verdict.why}" if verdict.why else "found on base"
        case Status.SUPERSEDED:
            return verdict.why or "superseded during its integration"
        case _:
            why = verdict.why or "withdrawn"
            return f"taken out of the train: {why}"


def _parents(s: Snapshot) -> list[Action]:
    """Rule 3: every car on the commit it must stand on; builds one car per round."""
    expected, expected_is_base = s.base_tip, True
    for car in s.cars:
        if not car.built:
            return [Build(car.key, expected, expected_is_base)]
        if car.parent != expected:
            moved = car.on_base and expected_is_base
            if moved and car.base_moves >= s.max_base_moves:
                message = (
                    f"base moved {car.base_moves + 1} times while the candidate was being "
                    f"checked; gave up after {car.base_moves} rebuilds"
                )
                return [*_stop_checks(car), Block(car.key, "push_rejected", {"message": message})]
            return [*_stop_checks(car), Build(car.key, expected, expected_is_base, moved)]
        if not car.failed:
            assert car.commit is not None
            expected, expected_is_base = car.commit, False
    return []


def _stop_checks(car: Car) -> list[Action]:
    return [CancelChecks(car.key)] if car.checks is Checks.RUNNING else []


def _head_failed(s: Snapshot) -> list[Action]:
    if not s.cars or not s.cars[0].failed:
        return []
    head = s.cars[0]
    failure = head.failure or Failure("checks_failed")
    out: list[Action] = [Block(head.key, failure.reason, dict(failure.details))]
    if failure.reason != "merge_conflict" and s.window.after_failure() != s.window.size:
        out.append(Resize(s.window.after_failure()))
    return out


def _advance(s: Snapshot) -> list[Action]:
    if s.hold is not None:
        return []
    run: list[Car] = []
    for car in s.cars:
        if not (car.passed or car.empty) or car.commit is None:
            break
        run.append(car)
    if not run:
        return []
    last = run[-1]
    assert last.commit is not None
    if last.commit == s.base_tip:  # nothing to push: they are on base (rule 1 next round)
        return []
    return [Advance(last.key, s.base_tip, last.commit, tuple(c.key for c in run))]


def _fill(s: Snapshot) -> list[Action]:
    in_flight = sum(1 for car in s.cars if not car.failed)
    free = s.window.size - in_flight
    if free <= 0:
        return []
    members = {m.item_id for car in s.cars for m in car.members}
    out: list[Action] = []
    unknown: list[str] = []
    for member in s.queue:
        if free <= 0:
            break
        if member.item_id in members:
            continue
        verdict = s.readiness.get(member.item_id)
        if verdict is None:
            unknown.append(member.item_id)
            free -= 1
            continue
        if unknown:  # keep queue order: nothing behind an unknown one gets a car first
            continue
        match verdict.decision:
            case Decision.BUILD:
                out.append(NewCar(Car(member.item_id, (member,))))
                free -= 1
            case Decision.UNKNOWN:
                break  # git cannot be asked: wait rather than skip ahead of it
            case Decision.BLOCKED:
                out.append(
                    Settle(
                        member.item_id,
                        Status.BLOCKED,
                        "integration recorded",
                        verdict.reasons,
                        verdict.followup_id,
                    )
                )
            case Decision.SUPERSEDED:
                cause = verdict.why or "superseded"
                out.append(Settle(member.item_id, Status.SUPERSEDED, cause, verdict.reasons))
            case Decision.INTEGRATED:
                out.append(Settle(member.item_id, Status.INTEGRATED, "found already on base"))
            case Decision.NOT_READY:
                cause = f"not ready any more: {verdict.why}"
                out.append(Settle(member.item_id, Status.CANCELLED, cause, verdict.reasons))
    if unknown and not out:
        return [Recheck(tuple(unknown))]
    return out


def _start_checks(s: Snapshot) -> list[Action]:
    return [
        StartChecks(car.key)
        for car in s.cars
        if car.built
        and car.failure is None
        and car.checks is Checks.NONE
        and car.commit is not None
        and not car.empty
    ]
