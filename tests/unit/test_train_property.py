"""The train planner driven through random check results, base pushes, withdrawals, new heads and
restarts, against a model of the remote and of SPEC §11's invariants.

The model plays the runner (it performs each action on a small world: commits with their content,
a base ref moved by compare-and-swap) and the world (checks fail exactly when a commit contains a
bad candidate; someone else may push base; members may be withdrawn or superseded; the integrator
may restart, losing every running check). After every action it asserts:

- base moves only by compare-and-swap fast-forward, to a car commit whose checks (and those of
  every car landing with it) passed, whose tree is exactly the old base plus those cars' members;
- no candidate lands twice; a removed or bad candidate never lands;
- a car known red without a check run (bisection) really holds a failing candidate, and a good
  candidate is never blocked for a failure (only for base moving under it too often);
and at the end, with the world quiet, every candidate ended integrated, blocked, cancelled or
superseded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mergebot.integrator.planner import (
    READY,
    Action,
    Advance,
    Batching,
    Bisect,
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
    plan,
)
from mergebot.queue import Status

N = 8


@dataclass
class World:
    bad: frozenset[str]
    clash: frozenset[str]
    window: Window
    batch: int = 1
    base: str = "root"
    parents: dict[str, str | None] = field(default_factory=lambda: {"root": None})
    content: dict[str, frozenset[str]] = field(default_factory=lambda: {"root": frozenset()})
    removed: dict[str, Decision] = field(default_factory=dict)
    status: dict[str, Status] = field(default_factory=dict)
    cars: list[Car] = field(default_factory=list)
    readiness: dict[str, Verdict] = field(default_factory=dict)
    landed: list[str] = field(default_factory=list)
    blocked_for: dict[str, str] = field(default_factory=dict)
    counter: int = 0
    check_runs: int = 0
    ticks: int = 0

    def new_commit(self, parent: str, members: frozenset[str]) -> str:
        self.counter += 1
        sha = f"k{self.counter}"
        self.parents[sha] = parent
        self.content[sha] = self.content[parent] | members
        return sha

    def ancestors(self, sha: str) -> set[str]:
        seen: set[str] = set()
        at: str | None = sha
        while at is not None:
            seen.add(at)
            at = self.parents[at]
        return seen

    def car(self, key: str) -> int:
        return next(i for i, c in enumerate(self.cars) if c.key == key)

    def snapshot(self) -> Snapshot:
        queued = tuple(
            Member(i, i, i) for i in sorted(self.status) if self.status[i] is Status.QUEUED
        )
        return Snapshot(
            cars=tuple(self.cars),
            queue=queued,
            base_tip=self.base,
            contained=frozenset(self.ancestors(self.base)),
            readiness=dict(self.readiness),
            window=self.window,
            batch=Batching(self.batch),
        )

    # -- the runner's side ---------------------------------------------------------------------
    def perform(self, action: Action) -> None:
        match action:
            case Recheck(ids):
                for i in ids:
                    self.readiness[i] = self.verdict(i)
            case Settle(item_id, to):
                assert self.status[item_id] is Status.QUEUED
                assert to is not Status.INTEGRATED
                self.status[item_id] = to
            case NewCar(car):
                assert 1 <= len(car.members) <= self.batch
                for m in car.members:
                    assert self.status[m.item_id] is Status.QUEUED
                    assert self.readiness[m.item_id] == READY
                    self.status[m.item_id] = Status.IN_PROGRESS
                self.cars.append(car)
            case Build(key, parent, on_base, moved):
                i = self.car(key)
                car = self.cars[i]
                members = frozenset(m.item_id for m in car.members)
                base = {"generation": car.generation + 1, "base_moves": car.base_moves + moved}
                if members & self.clash:
                    built = car.rebuilt(**base)
                    self.cars[i] = replace(
                        built, parent=parent, on_base=on_base, failure=Failure("merge_conflict")
                    )
                else:
                    sha = self.new_commit(parent, members)
                    built = car.rebuilt(**base)
                    self.cars[i] = replace(built, parent=parent, on_base=on_base, commit=sha)
            case StartChecks(key):
                i = self.car(key)
                assert self.cars[i].checks is Checks.NONE
                self.cars[i] = replace(self.cars[i], checks=Checks.RUNNING)
                self.check_runs += 1
            case CancelChecks(key):
                i = self.car(key)
                self.cars[i] = replace(self.cars[i], checks=Checks.NONE)
            case Advance(key, old, new, landing):
                self.advance(key, old, new, landing)
            case Land(key, before, after):
                car = self.cars.pop(0)
                assert car.key == key
                assert after in self.ancestors(self.base)
                for m in car.members:
                    assert m.item_id not in self.landed, "integrated twice"
                    assert self.status[m.item_id] is Status.IN_PROGRESS
                    self.status[m.item_id] = Status.INTEGRATED
                    self.landed.append(m.item_id)
                assert before == car.parent
            case Block(key, reason):
                car = self.cars.pop(self.car(key))
                for m in car.members:
                    self.status[m.item_id] = Status.BLOCKED
                    self.blocked_for[m.item_id] = reason
            case Bisect(key, halves):
                i = self.car(key)
                assert all(c.passed for c in self.cars[:i]), "bisected behind an unchecked car"
                assert self.cars[i].failed
                assert [m for h in halves for m in h.members] == list(self.cars[i].members)
                self.cars[i : i + 1] = list(halves)
            case KnownRed(key, parent, failure):
                i = self.car(key)
                car = self.cars[i]
                ids = frozenset(m.item_id for m in car.members)
                assert ids & (self.bad | self.clash), "known red, but every member is good"
                self.cars[i] = car.known_red(parent, failure)
            case Promote(key):
                i = self.car(key)
                car = self.cars[i]
                assert car.passed, "promoted an unchecked half"
                assert car.parent == self.base
                assert all(not c.passed and c.parent in (None, car.parent) for c in self.cars[:i])
                self.cars[i : i + 1] = []
                self.cars.insert(0, car.stacked())
            case Merge(keys, car):
                i = self.car(keys[0])
                assert [c.key for c in self.cars[i : i + len(keys)]] == list(keys)
                assert [m for k in keys for m in self.cars[self.car(k)].members] == list(
                    car.members
                )
                self.cars[i : i + len(keys)] = [car]
            case TakeOut(key, item_id, to):
                assert self.status[item_id] is Status.IN_PROGRESS
                self.status[item_id] = to
            case Shrink(key, members):
                i = self.car(key)
                self.cars[i] = self.cars[i].rebuilt(members=members)
            case Drop(key):
                self.cars.pop(self.car(key))
            case Resize(size):
                assert 1 <= size <= self.window.maximum
                self.window = replace(self.window, size=size)

    def advance(self, key: str, old: str, new: str, landing: tuple[str, ...]) -> None:
        if self.base != old:
            return  # the compare-and-swap refuses: the runner fetches and plans again
        cars = [self.cars[self.car(k)] for k in landing]
        assert [c.key for c in self.cars[: len(cars)]] == list(landing)
        added: set[str] = set()
        for car in cars:
            assert car.passed or car.empty, "base moved to a car whose checks did not pass"
            added |= {m.item_id for m in car.members}
        assert old in self.ancestors(new), "not a fast-forward"
        assert self.content[new] == self.content[old] | added, "not exactly the cars before it"
        assert not added & self.bad, "a failing candidate reached base"
        assert not added & set(self.removed), "a removed candidate reached base"
        assert not added & set(self.landed)
        self.base = new

    def verdict(self, item_id: str) -> Verdict:
        why = self.removed.get(item_id)
        if item_id in self.content[self.base]:
            return Verdict(Decision.INTEGRATED)
        return READY if why is None else Verdict(why, ("changed",))

    # -- the world's side ------------------------------------------------------------------------
    def finish_checks(self, which: int) -> None:
        running = [i for i, c in enumerate(self.cars) if c.checks is Checks.RUNNING]
        if not running:
            return
        i = running[which % len(running)]
        car = self.cars[i]
        assert car.commit is not None
        red = bool(self.content[car.commit] & self.bad)
        self.cars[i] = replace(car, checks=Checks.FAILED if red else Checks.PASSED)

    def remove(self, which: int, why: Decision) -> None:
        open_ = [i for i, s in sorted(self.status.items()) if s in (Status.QUEUED,
                                                                   Status.IN_PROGRESS)]  # fmt: skip
        if not open_:
            return
        item = open_[which % len(open_)]
        self.removed[item] = why
        self.readiness[item] = self.verdict(item)  # the processor's signal, re-checked

    def push_base(self) -> None:
        self.base = self.new_commit(self.base, frozenset({f"theirs-{self.counter}"}))

    def restart(self) -> None:
        """A new lease holder: running checks are gone with the old one; queued readiness is
        asked again."""
        self.cars = [replace(c, checks=Checks.NONE) if c.checks is Checks.RUNNING else c
                     for c in self.cars]  # fmt: skip
        self.readiness = {i: v for i, v in self.readiness.items() if i in self.removed}

    def quiet(self) -> None:
        """The world goes quiet: every check finishes, and the train runs dry."""
        for _ in range(200):
            if not any(c.checks is Checks.RUNNING for c in self.cars):
                break
            self.finish_checks(0)
            self.settle()
        assert self.cars == []

    def settle(self, limit: int = 200) -> None:
        for _ in range(limit):
            actions = plan(self.snapshot())
            if not actions:
                return
            for action in actions:
                self.perform(action)
        raise AssertionError("the planner never settled")


EVENTS = st.one_of(
    st.tuples(st.just("finish"), st.integers(0, 10)),
    st.tuples(st.just("withdraw"), st.integers(0, 10)),
    st.tuples(st.just("supersede"), st.integers(0, 10)),
    st.tuples(st.just("push"), st.just(0)),
    st.tuples(st.just("restart"), st.just(0)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bad=st.frozensets(st.sampled_from([f"c{n}" for n in range(N)]), max_size=3),
    clash=st.frozensets(st.sampled_from([f"c{n}" for n in range(N)]), max_size=1),
    depth=st.integers(1, 4),
    adaptive=st.booleans(),
    batch=st.sampled_from([1, 1, 2, 3, 4, 8]),
    events=st.lists(EVENTS, max_size=40),
)
def test_the_train_keeps_every_invariant(
    bad: frozenset[str],
    clash: frozenset[str],
    depth: int,
    adaptive: bool,
    batch: int,
    events: list[tuple[str, int]],
) -> None:
    world = World(bad, clash, Window(depth, adaptive, maximum=4), batch)
    world.status = {f"c{n}": Status.QUEUED for n in range(N)}
    world.settle()
    for kind, which in events:
        match kind:
            case "finish":
                world.finish_checks(which)
            case "withdraw":
                world.remove(which, Decision.NOT_READY)
            case "supersede":
                world.remove(which, Decision.SUPERSEDED)
            case "push":
                world.push_base()
            case "restart":
                world.restart()
        world.settle()
    world.quiet()
    assert all(s in (Status.INTEGRATED, Status.BLOCKED, Status.CANCELLED, Status.SUPERSEDED)
               for s in world.status.values()), world.status  # fmt: skip
    for item, status in world.status.items():
        if status is Status.INTEGRATED:
            assert item in world.content[world.base]
        if item in world.bad:
            assert status is not Status.INTEGRATED
        if status is Status.BLOCKED:
            assert item in world.bad or item in world.clash or item not in world.removed
            if item not in world.bad and item not in world.clash:
                assert world.blocked_for[item] == "push_rejected", (item, world.blocked_for)
    # Without failures, removals or someone else's pushes, everything lands in queue order.
    if not bad and not clash and not any(k in ("withdraw", "supersede", "push") for k, _ in events):
        assert world.landed == [f"c{n}" for n in range(N)]


def quiet_run(bad: set[int], *, size: int, depth: int = 1) -> World:
    """A batch of `size` candidates (c0…) with `bad` among them, nothing else happening; every
    check takes one tick, checks started together finish together (`World.ticks`)."""
    world = World(frozenset(f"c{n}" for n in bad), frozenset(), Window(depth), size)
    world.status = {f"c{n}": Status.QUEUED for n in range(size)}
    world.settle()
    for _ in range(100):
        running = [i for i, c in enumerate(world.cars) if c.checks is Checks.RUNNING]
        if not running:
            break
        world.ticks += 1
        for _ in running:
            world.finish_checks(0)
        world.settle()
    assert world.cars == []
    return world


def test_one_culprit_in_a_batch_of_8_costs_at_most_log2_plus_one_extra_check_runs() -> None:
    for culprit in range(8):
        world = quiet_run({culprit}, size=8, depth=1)
        assert world.landed == [f"c{n}" for n in range(8) if n != culprit]
        assert world.status[f"c{culprit}"] is Status.BLOCKED
        assert world.check_runs - 1 <= 4, (culprit, world.check_runs)


def test_concurrent_halves_cost_at_most_twice_the_runs_and_never_more_time() -> None:
    """Depth 4: both halves of a red batch are checked at once on the same base; a green half
    lands even when its sibling ahead is red. One culprit in 8: at most 2·log2(8) + 1 extra
    runs, never more ticks than one half after the other, fewer in total."""
    serial_ticks = concurrent_ticks = 0
    for culprit in range(8):
        serial = quiet_run({culprit}, size=8, depth=1)
        world = quiet_run({culprit}, size=8, depth=4)
        assert sorted(world.landed) == [f"c{n}" for n in range(8) if n != culprit]
        assert world.status[f"c{culprit}"] is Status.BLOCKED
        assert world.check_runs - 1 <= 2 * 3 + 1, (culprit, world.check_runs)
        assert world.ticks <= serial.ticks, (culprit, world.ticks, serial.ticks)
        serial_ticks += serial.ticks
        concurrent_ticks += world.ticks
    assert concurrent_ticks < serial_ticks


def test_two_culprits_are_both_blocked_and_the_rest_lands() -> None:
    for pair in [(0, 1), (2, 5), (6, 7), (0, 7)]:
        world = quiet_run(set(pair), size=8)
        assert world.landed == [f"c{n}" for n in range(8) if n not in pair]  # in queue order
        assert {world.status[f"c{n}"] for n in pair} == {Status.BLOCKED}
        world = quiet_run(set(pair), size=8, depth=4)
        assert sorted(world.landed) == [f"c{n}" for n in range(8) if n not in pair]
        assert {world.status[f"c{n}"] for n in pair} == {Status.BLOCKED}


def test_a_green_batch_is_one_check_run() -> None:
    world = quiet_run(set(), size=4)
    assert world.landed == ["c0", "c1", "c2", "c3"]
    assert world.check_runs == 1
