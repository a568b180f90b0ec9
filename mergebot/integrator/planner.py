"""The train planner: what the integrator does next, as values (SPEC §5, §6, §11, §13).

A *train* is the cars in flight for one (repo, base), in queue order. A *car* is one integration
attempt: its members (one candidate, or a batch of up to `batch.max_size`), its *parent* (the base
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
   `Block`ed with its follow-up — or, when it is a batch that failed for its content (a conflict,
   a failed or timed-out check), `Bisect`ed (see "Bisection" below). A car that failed behind
   the head waits: the cars behind it were already rebuilt without it (rule 3), and it is
   blocked only once everything ahead of it landed — if a car ahead fails instead, it is rebuilt
   and tested again without that car, so a candidate is never blocked for someone else's change
   (Zuul's dependent pipeline does the same). The exception, asked before rule 3: a concurrent
   half of one member red on the base tip beside the head has nobody else's change in its tree
   and is blocked at once (see "Bisection").
5. **Advance.** The longest run of cars from the head whose checks passed: base moves to the
   last of them by one compare-and-swap fast-forward (`Advance`). Each car's tree contains every
   car before it, so base is always exactly a tested tree. With a `hold` (a freeze, a red base),
   base does not move; everything else goes on.
6. **Fill.** While fewer cars than the window are in flight (failed ones waiting for their turn do
   not count: they use no CI), the next queued candidates get a car, up to `batch.max_size` of
   them in queue order (`Recheck` first when their readiness is not known this round; a
   candidate that is not ready any more is `Settle`d). With `batch.wait_seconds`, a batch that
   would not be full waits until its oldest candidate has been ready that long.
7. **Checks.** Every built car whose checks have not started gets `StartChecks` — except behind
   a bisection probe and its concurrent halves (below): nothing is checked on top of a tree
   known to contain a culprit. Plain cars ahead of a car that rule 3 is building get theirs
   with that `Build`, so the head does not wait for every build behind it (each one a push, on
   a forge often a second).

**Bisection.** A red batch F at the head is split into two cars: L, its first half, and R, the
rest, which remembers that on top of a green L *standing where F stood* it is F's tree again —
known red without a check run (`KnownRed`). A single member found red is the culprit: `Block`ed,
its follow-up naming the failed check and the batch it was isolated from.
At depth 1, R is stacked on L and only the first unresolved bisection car (the probe) is
checked; cars behind it are built but wait. Each level costs one check run: L red → L is
bisected in turn; L green → L lands and R is known red, bisected without a run. After a culprit
the unresolved halves behind it are `Merge`d into one car and checked once. One culprit in a
batch of B costs at most ⌈log2 B⌉ + 1 runs beyond the batch's own.
At depth > 1, R stands *beside* L (`Bisection.beside`): on the parent F stood on, and both are
checked at once (more halves too, while the window has room). L green → it lands and R is
known red on it; L red and R green → R is `Promote`d to the head and lands first, L is bisected
on top of it; a single member red beside the head on the base tip is blocked at once; a beside
car behind a green car it is not known red on is merged with the siblings behind it and
checked once, stacked. One culprit costs at most 2⌈log2 B⌉ + 1 runs,
and never more time than one half after the other.

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
    """One candidate of a car (its queue item). `ready_at` (epoch seconds) only matters for a
    batch's wait; it is not part of a member's identity."""

    item_id: str
    slug: str
    sha: str
    ready_at: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Failure:
    """Why a car failed: a `integration_blocked` reason and its details."""

    reason: str  # merge_conflict | checks_failed | checks_missing | checks_timeout | push_rejected
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


BISECTABLE = frozenset({"merge_conflict", "checks_failed", "checks_timeout"})


@dataclass(frozen=True)
class Bisection:
    """A car made by bisecting a red batch.

    `batch`: the slugs of the batch first found red (named in the culprit's follow-up).
    `failure`: why the tree this car was split from failed (inherited by a known-red car).
    `red_after` / `red_on`: the members of the half ahead of this one and the parent the split
    tree stood on — when a car with exactly those members passed on that parent, this car on top
    of it is the split tree again, so it is red without running anything.
    `beside`: a concurrent half (`pipeline.depth` > 1) — it stands on the same parent as the
    bisection car right before it (its sibling), not on its commit, so both are checked at
    once."""

    batch: tuple[str, ...]
    failure: Failure
    red_after: tuple[str, ...] = ()
    red_on: str | None = None
    beside: bool = False


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
    bisect: Bisection | None = None

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
    def resolved(self) -> bool:
        """Its outcome is known: passed, failed, or nothing to check."""
        return self.passed or self.failed or self.empty

    @property
    def empty(self) -> bool:
        """Adds nothing to its parent: it needs no checks, and lands with its parent."""
        return self.commit is not None and self.commit == self.parent

    @property
    def beside(self) -> bool:
        return self.bisect is not None and self.bisect.beside

    def stacked(self) -> Car:
        """This car no longer beside its sibling: it goes on top of what is ahead of it."""
        if self.bisect is None or not self.bisect.beside:
            return self
        return replace(self, bisect=replace(self.bisect, beside=False, red_after=(), red_on=None))

    def known_red(self, parent: str, failure: Failure) -> Car:
        """This car put on `parent`, where it is a tree already seen red (see `KnownRed`)."""
        car = self.rebuilt() if self.parent != parent else self
        bisect = replace(car.bisect, beside=False) if car.bisect is not None else None
        return replace(
            car, parent=parent, on_base=False, checks=Checks.NONE, failure=failure, bisect=bisect
        )

    def rebuilt(self, **changes: Any) -> Car:
        """This car, to be built again (on a new parent, or with fewer members: then it is not
        the tree a bisection knew to be red any more)."""
        if "members" in changes and self.bisect is not None:
            changes.setdefault("bisect", replace(self.bisect, red_after=(), red_on=None))
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
class Batching:
    """`batch.max_size` and `batch.wait_seconds` (SPEC §13)."""

    max_size: int = 1
    wait_seconds: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """Everything the planner looks at.

    `contained`: which of the cars' commits (and members' shas) the base tip contains — the one
    git question the runner answers for it. `readiness`: the latest re-check of members and of
    queued candidates (a candidate missing here is assumed still ready when it is a member, and
    re-checked before it gets a car when it is queued). `hold`: a reason base may not move now
    (a freeze, a red base), or None. `now` (epoch seconds) is compared with members'
    `ready_at` for a batch's wait.
    """

    cars: tuple[Car, ...]
    queue: tuple[Member, ...]
    base_tip: str
    contained: frozenset[str] = frozenset()
    readiness: Mapping[str, Verdict] = field(default_factory=dict)
    window: Window = field(default_factory=Window)
    hold: str | None = None
    max_base_moves: int = 3
    batch: Batching = field(default_factory=Batching)
    now: float = 0.0


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


@dataclass(frozen=True)
class Bisect:
    """The red batch car `key` at the head is replaced by `halves` (its members, split in two);
    its members stay `in_progress`."""

    key: str
    halves: tuple[Car, ...]


@dataclass(frozen=True)
class KnownRed:
    """Car `key`, put on `parent`, is a tree already seen red: it fails with `failure` without
    a check run."""

    key: str
    parent: str
    failure: Failure


@dataclass(frozen=True)
class Promote:
    """The concurrent half `key`, checked green on the base tip beside a red sibling ahead of it,
    moves to the head of the train (no longer beside anything): it lands first, and the red
    sibling is bisected on top of it."""

    key: str


@dataclass(frozen=True)
class Merge:
    """The unresolved bisection cars `keys` (consecutive) become one car, checked once."""

    keys: tuple[str, ...]
    car: Car


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
    | Bisect
    | KnownRed
    | Promote
    | Merge
)

# Readiness decisions that take a member out of the train, and the status its item ends with.
_TAKEN_OUT = {
    Decision.SUPERSEDED: Status.SUPERSEDED,
    Decision.NOT_READY: Status.CANCELLED,
    Decision.INTEGRATED: Status.INTEGRATED,
}


def plan(snapshot: Snapshot) -> list[Action]:
    """The next actions for the train in `snapshot` (empty: wait for something to happen)."""
    for rule in (_landed, _removed, _culprit_beside, _parents, _head_failed):
        actions = rule(snapshot)
        if actions:
            if rule is _parents and isinstance(actions[-1], Build):
                return _checks_ahead(snapshot, actions[-1].key) + actions
            return actions
    return _advance(snapshot) + _fill(snapshot)[0] + _start_checks(snapshot)


def _checks_ahead(s: Snapshot, building: str) -> list[Action]:
    """Rule 7 for the plain cars ahead of the car being built: they stand where they must, so
    their checks start now instead of after every car behind them is built (with a window of
    8 that wait was eight builds long, every time the train refilled). Bisection cars and what
    follows a red batch wait for rule 7 proper."""
    out: list[Action] = []
    for car in s.cars:
        if car.key == building or car.bisect is not None or _to_bisect(car):
            break
        if _startable(car):
            out.append(StartChecks(car.key))
    return out


def batch_wait(snapshot: Snapshot) -> float | None:
    """Seconds until a batch held back by `batch.wait_seconds` goes anyway (None: none is)."""
    return _fill(snapshot)[1]


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
    """Rule 3: every car on the commit it must stand on; builds one car per round. A concurrent
    half stands where its sibling group stands (the parent of the group's first car)."""
    expected, expected_is_base = s.base_tip, True
    group = (expected, expected_is_base)
    previous: Car | None = None
    for index, car in enumerate(s.cars):
        red = _known_red(car, previous)
        if red is not None:
            return [*_stop_checks(car), red]
        if _sibling(car, previous):
            assert previous is not None
            if previous.passed or previous.empty:
                # The sibling ahead lands: what was checked beside it says nothing on top of it.
                return _restack(s.cars[index:], previous)
        else:
            group = (expected, expected_is_base)
        previous = car
        want, want_is_base = group
        if not car.built:
            return [Build(car.key, want, want_is_base)]
        if car.parent != want:
            moved = car.on_base and want_is_base
            if moved and car.base_moves >= s.max_base_moves:
                message = (
                    f"base moved {car.base_moves + 1} times while the candidate was being "
                    f"checked; gave up after {car.base_moves} rebuilds"
                )
                return [*_stop_checks(car), Block(car.key, "push_rejected", {"message": message})]
            return [*_stop_checks(car), Build(car.key, want, want_is_base, moved)]
        if not car.failed:
            assert car.commit is not None
            expected, expected_is_base = car.commit, False
    return []


def _sibling(car: Car, previous: Car | None) -> bool:
    """`car` is a concurrent half standing beside `previous` (a half of the same batch)."""
    return (
        car.beside
        and previous is not None
        and previous.bisect is not None
        and car.bisect is not None
        and previous.bisect.batch == car.bisect.batch
    )


def _group(cars: tuple[Car, ...]) -> tuple[Car, ...]:
    """The first car and the concurrent halves standing beside it."""
    end = 1
    while end < len(cars) and _sibling(cars[end], cars[end - 1]):
        end += 1
    return cars[:end]


def _restack(behind: tuple[Car, ...], ahead: Car) -> list[Action]:
    """The concurrent halves behind a green half that they are not known red on: one car
    again, stacked on it and checked once (the `+ 1` of the bound)."""
    run = _group((ahead, *behind))[1:]
    assert ahead.bisect is not None
    members = tuple(m for car in run for m in car.members)
    merged = Car(
        members[0].item_id,
        members,
        max(car.generation for car in run),
        bisect=Bisection(ahead.bisect.batch, ahead.bisect.failure),
    )
    stops: list[Action] = [CancelChecks(c.key) for c in run if c.checks is Checks.RUNNING]
    return [*stops, Merge(tuple(car.key for car in run), merged)]


def _known_red(car: Car, previous: Car | None) -> KnownRed | None:
    """A bisection half right behind the green half it was split from, on the parent the split
    tree stood on: it is that tree again, red without a run. (A concurrent half is that tree
    on top of its green sibling whatever its own checks beside it said.)"""
    bisect = car.bisect
    if bisect is None or not bisect.red_after or car.empty:
        return None
    if not bisect.beside and (car.failed or car.checks is not Checks.NONE):
        return None
    if previous is None or not previous.passed or previous.commit is None:
        return None
    if tuple(m.item_id for m in previous.members) != bisect.red_after:
        return None
    if previous.parent != bisect.red_on:
        return None
    return KnownRed(car.key, previous.commit, bisect.failure)


def _stop_checks(car: Car) -> list[Action]:
    return [CancelChecks(car.key)] if car.checks is Checks.RUNNING else []


def _head_failed(s: Snapshot) -> list[Action]:
    if not s.cars or not s.cars[0].failed:
        return []
    head = s.cars[0]
    failure = head.failure or Failure("checks_failed")
    first_failure = head.bisect is None
    shrunk = s.window.after_failure()
    resize = first_failure and failure.reason != "merge_conflict" and shrunk != s.window.size
    window = shrunk if resize else s.window.size
    out: list[Action]
    if _to_bisect(head):
        siblings = _group(s.cars)[1:]
        if any(c.checks is Checks.RUNNING for c in siblings):
            return []  # its concurrent halves finish first: a green one lands before it
        green = next((c for c in siblings if c.passed), None)
        promote: list[Action] = [Promote(green.key)] if green is not None else []
        out = [*promote, Bisect(head.key, _halves(head, failure, concurrent=window > 1))]
    else:
        out = [_block(head)]
        if head.bisect is not None:
            out += _merge_rest(s.cars[1:], head.bisect)
    if resize:
        out.append(Resize(shrunk))
    return out


def _block(car: Car) -> Block:
    """Block the failed car `car`; a bisection car's follow-up names the batch it came from."""
    failure = car.failure or Failure("checks_failed")
    details = dict(failure.details)
    if car.bisect is not None:
        details["bisection"] = {
            "batch": list(car.bisect.batch),
            "isolated": [m.slug for m in car.members],
        }
    return Block(car.key, failure.reason, details)


def _culprit_beside(s: Snapshot) -> list[Action]:
    """Rule 4 for a concurrent half of one member that failed beside the head, on the base tip
    itself: nothing ahead of it is in its tree, so its failure is its own on the current base,
    and it is blocked now — before a green sibling ahead lands and makes that base old."""
    for car in _group(s.cars)[1:]:
        if car.failed and len(car.members) == 1 and car.parent == s.base_tip:
            return [_block(car)]
    return []


def _to_bisect(car: Car) -> bool:
    failure = car.failure or Failure("checks_failed")
    return car.failed and len(car.members) > 1 and failure.reason in BISECTABLE


def _halves(car: Car, failure: Failure, *, concurrent: bool) -> tuple[Car, ...]:
    """The red batch `car` split in two: the first half is checked next; the second knows that
    on a green first half it is `car`'s tree again. `concurrent`: the second half stands
    beside the first, on the same parent, and both are checked at once."""
    batch = car.bisect.batch if car.bisect else tuple(m.slug for m in car.members)
    cut = (len(car.members) + 1) // 2
    first, rest = car.members[:cut], car.members[cut:]
    left = Bisection(batch, failure)
    right = Bisection(batch, failure, tuple(m.item_id for m in first), car.parent, concurrent)
    return (
        Car(first[0].item_id, first, car.generation, bisect=left),
        Car(rest[0].item_id, rest, car.generation, bisect=right),
    )


def _merge_rest(behind: tuple[Car, ...], bisect: Bisection) -> list[Action]:
    """After a culprit, the unresolved halves of the same batch behind it are one car again."""
    run: list[Car] = []
    for car in behind:
        same = car.bisect is not None and car.bisect.batch == bisect.batch
        if not same or car.beside or car.resolved or car.checks is not Checks.NONE:
            break
        run.append(car)
    if len(run) < 2:
        return []
    members = tuple(m for car in run for m in car.members)
    merged = Car(
        members[0].item_id,
        members,
        max(car.generation for car in run),
        bisect=Bisection(bisect.batch, bisect.failure),
    )
    return [Merge(tuple(car.key for car in run), merged)]


def _advance(s: Snapshot) -> list[Action]:
    if s.hold is not None:
        return []
    run: list[Car] = []
    for car in s.cars:
        if not (car.passed or car.empty) or car.commit is None:
            break
        if car.parent != (run[-1].commit if run else s.base_tip):
            break  # a concurrent half: checked beside the car ahead, not on top of it
        run.append(car)
    if not run:
        return []
    last = run[-1]
    assert last.commit is not None
    if last.commit == s.base_tip:  # nothing to push: they are on base (rule 1 next round)
        return []
    return [Advance(last.key, s.base_tip, last.commit, tuple(c.key for c in run))]


def _fill(s: Snapshot) -> tuple[list[Action], float | None]:
    """Rule 6, and how long a batch that would not be full is held back (None: nothing is)."""
    in_flight = sum(1 for car in s.cars if not car.failed)
    free = s.window.size - in_flight
    if free <= 0:
        return [], None
    size = max(1, s.batch.max_size)
    members = {m.item_id for car in s.cars for m in car.members}
    out: list[Action] = []
    unknown: list[str] = []
    ready: list[Member] = []
    for member in s.queue:
        if len(ready) + len(unknown) >= free * size:
            break
        if member.item_id in members:
            continue
        verdict = s.readiness.get(member.item_id)
        if verdict is None:
            unknown.append(member.item_id)
            continue
        if unknown:  # keep queue order: nothing behind an unknown one gets a car first
            continue
        match verdict.decision:
            case Decision.BUILD:
                ready.append(member)
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
    groups = [tuple(ready[i : i + size]) for i in range(0, len(ready), size)]
    held: float | None = None
    if groups and len(groups[-1]) < size:
        if unknown:
            groups.pop()  # the candidates being re-checked may fill it
        else:
            held = _held(s, groups[-1])
            if held is not None:
                groups.pop()
    out += [NewCar(Car(group[0].item_id, group)) for group in groups]
    if unknown and not out:
        return [Recheck(tuple(unknown))], None
    return out, held


def _held(s: Snapshot, group: tuple[Member, ...]) -> float | None:
    """Seconds the short batch `group` still waits for more candidates (None: it goes now)."""
    wait = s.batch.wait_seconds
    if wait <= 0:
        return None
    left = min(m.ready_at for m in group) + wait - s.now
    return left if left > 0 else None


def _start_checks(s: Snapshot) -> list[Action]:
    """Rule 7. A bisection car is the probe once every car ahead of it passed (a failed one
    ahead is blocked or bisected first, which may merge the probe with what follows); its
    concurrent halves are checked with it while the window has room; nothing behind them is
    checked (it stands on a tree with a culprit in it), nor behind a red batch waiting to be
    bisected: its halves will come before those cars, so whatever they ran now would be rebuilt
    and run again."""
    out: list[Action] = []
    running = sum(1 for car in s.cars if car.checks is Checks.RUNNING)
    for index, car in enumerate(s.cars):
        if _to_bisect(car):
            break
        probe = car.bisect is not None and not car.resolved
        if probe and not all(c.passed or c.empty for c in s.cars[:index]):
            break
        if _startable(car):
            out.append(StartChecks(car.key))
            running += 1
        if probe:
            for sibling in _group(s.cars[index:])[1:]:
                if _startable(sibling) and running < s.window.size:
                    out.append(StartChecks(sibling.key))
                    running += 1
            break
    return out


def _startable(car: Car) -> bool:
    return (
        car.built
        and car.failure is None
        and car.checks is Checks.NONE
        and car.commit is not None
        and not car.empty
    )
