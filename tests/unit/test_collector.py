"""The garbage collector's schedule of a server process: full collections walk only what is new,
and a cycle that became garbage among frozen objects is still collected by the deep collection."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest

from mergebot.collector import FreezeAfterFull, collector_schedule, deep_collection
from tests.waiting import until


class Node:
    """A weakly referable object that can be part of a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture
def freezer() -> Iterator[FreezeAfterFull]:
    found = FreezeAfterFull()
    found.install()
    try:
        yield found
    finally:
        found.uninstall()
        gc.unfreeze()


def walked_by_a_full_collection() -> set[int]:
    return {id(o) for generation in range(3) for o in gc.get_objects(generation)}


def test_what_outlived_a_full_collection_is_not_walked_by_the_next(
    freezer: FreezeAfterFull,
) -> None:
    held = [{"candidate": [i]} for i in range(1000)]
    assert {id(held), id(held[0])} <= walked_by_a_full_collection()
    gc.collect()
    assert freezer.freezes >= 1
    walked = walked_by_a_full_collection()
    assert id(held) not in walked
    assert id(held[0]) not in walked
    newer = [[0]]
    assert id(newer) in walked_by_a_full_collection()


def test_a_cycle_that_became_garbage_while_frozen_is_collected_by_the_deep_collection(
    freezer: FreezeAfterFull,
) -> None:
    node, alive = cycle()
    gc.collect()  # the cycle is alive: frozen
    del node
    gc.collect()
    assert alive() is not None  # out of the full collection's reach
    collected, _seconds = deep_collection()
    assert alive() is None
    assert collected >= 2


def test_without_the_schedule_nothing_is_frozen() -> None:
    freezer = FreezeAfterFull()
    freezer.install()
    freezer.uninstall()
    gc.unfreeze()
    held = [[1]]
    gc.collect()
    assert id(held) in walked_by_a_full_collection()
    assert freezer not in gc.callbacks


async def test_the_schedule_collects_deeply_every_period_and_ends_with_its_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mergebot.collector")
    try:
        async with collector_schedule(0.05) as freezer:
            assert freezer in gc.callbacks
            node, alive = cycle()
            gc.collect()
            del node
            await until(lambda: alive() is None, "a deep collection to free the frozen cycle")
            assert "gc_deep_collection collected=" in caplog.text
        assert freezer not in gc.callbacks
    finally:
        gc.unfreeze()
