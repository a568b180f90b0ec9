"""When the garbage collector walks the heap of a server process, so a full collection stays short.

CPython's full collection walks every tracked object, and nothing else runs meanwhile: at 10,000
candidates the projections a processor holds are about 300,000 objects, and full collections
took 150-350 ms each, a stall of the event loop for whatever request or batch was running then.
They come again each time the objects that outlived two younger collections grow by a quarter
of the heap, so a growing server meets them over and over.

What survives a full collection is alive for long (projections, caches, connections). So right
after one, everything tracked is frozen (`gc.freeze`): later full collections walk only what was
made since. Nothing is garbage at that moment (the collection just ran), so the freeze keeps
nothing that was already dead. A frozen object is still freed by reference counting when dropped;
only a reference cycle of frozen objects that becomes garbage later waits, for the deep
collection (unfreeze everything, collect, freeze again) that `collector_schedule` runs every
`gc_deep_collection_seconds`: one long pause per period instead of many, and a bound on what a
cycle can hold meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("mergebot.collector")
OLDEST_GENERATION = len(gc.get_count()) - 1  # a full collection is one of this generation


class FreezeAfterFull:
    """Freezes what is alive at the end of every full collection (see the module's docstring)."""

    def __init__(self) -> None:
        self.freezes = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == OLDEST_GENERATION:
            gc.freeze()
            self.freezes += 1

    def install(self) -> None:
        """Freeze what is alive now (modules, classes, validators, the runtime) and from then
        on after every full collection."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        gc.freeze()

    def uninstall(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self)


def deep_collection() -> tuple[int, float]:
    """Collect the frozen objects too (their cycles that became garbage), then freeze what is
    still alive; how many objects were collected and how long it took."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()  # the callback froze already when it is installed; harmless twice
    return collected, time.perf_counter() - started


@contextlib.asynccontextmanager
async def collector_schedule(deep_every_seconds: float) -> AsyncIterator[FreezeAfterFull]:
    """Freeze after full collections while the block runs, with a deep collection every
    `deep_every_seconds`; the process's collector is as it was after the block."""
    freezer = FreezeAfterFull()
    freezer.install()

    async def deep_collections() -> None:
        while True:
            await asyncio.sleep(deep_every_seconds)
            collected, seconds = deep_collection()
            log.info(
                "gc_deep_collection collected=%d seconds=%.3f frozen=%d",
                collected, seconds, gc.get_freeze_count(),
            )  # fmt: skip

    task = asyncio.create_task(deep_collections(), name="gc-deep-collections")
    try:
        yield freezer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        freezer.uninstall()
