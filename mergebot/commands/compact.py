"""`mergebot compact`: take slugs finished before the retention period out of the projection
and trim the event log into snapshots (see `mergebot.compaction`).

A partition is compacted by whoever holds its lease. When no server holds it, this command takes
it and compacts; when a server does, the command asks it (`requested` in the partition's
compaction record) and waits for its next periodic pass (every 30 s) to do it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
from datetime import timedelta
from typing import cast

from mergebot.commands.support import CommandError, in_runtime
from mergebot.compaction import CompactionReport, compact_partition
from mergebot.runtime import Runtime
from mergebot.store.lease import Lease, LeaseBusyError

HELP = "prune slugs finished before the retention period and trim the event log into snapshots"
WAIT_SECONDS = 90.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention-days",
        type=float,
        default=None,
        help="keep slugs finished within this many days (default: MERGEBOT_RETENTION_DAYS, 30)",
    )


async def _compact(runtime: Runtime, days: float) -> list[str]:
    lines: list[str] = []
    for partition in runtime.keys.all_partitions():
        owner = f"compact:{socket.gethostname()}:{os.getpid()}"
        lease = Lease(
            runtime.redis, runtime.keys, f"partition {partition}", "events", owner,
            runtime.settings.processor_lease_ttl_seconds,
            runtime.settings.processor_lease_ttl_seconds / 3,
            key=runtime.keys.processor_lease(partition),
        )  # fmt: skip
        try:
            async with lease.held():
                report = await compact_partition(runtime, partition, retention=timedelta(days=days))
            lines.append(_describe(report))
        except LeaseBusyError:
            lines.append(await _ask_the_holder(runtime, partition, days))
    return lines


async def _ask_the_holder(runtime: Runtime, partition: int, days: float) -> str:
    key = runtime.keys.compaction(partition)
    await runtime.redis.hset(key, "requested", str(days))
    deadline = time.monotonic() + WAIT_SECONDS
    while await runtime.redis.hexists(key, "requested"):
        if time.monotonic() > deadline:
            raise CommandError(
                f"partition {partition}: the server holding it did not compact within "
                f"{WAIT_SECONDS:.0f} s (the request stays; it compacts on its next pass)"
            )
        await asyncio.sleep(0.5)
    raw = cast(dict[str, str], await runtime.redis.hgetall(key))
    return (
        f"partition {partition}: compacted by the server holding it, up to {raw.get('point')}, "
        f"{raw.get('trimmed', 0)} log entries trimmed"
    )


def _describe(report: CompactionReport) -> str:
    if report.point is None:
        return f"partition {report.partition}: nothing folded yet, nothing to compact"
    pruned = sum(report.pruned.values())
    return (
        f"partition {report.partition}: {pruned} finished slugs pruned from "
        f"{len(report.pruned)} repos, {report.trimmed} log entries trimmed "
        f"(snapshots up to {report.point})"
    )


def run(args: argparse.Namespace) -> int:
    try:
        lines = in_runtime(lambda runtime: _compact(runtime, _days(args, runtime)), doing="compact")
    except CommandError as exc:
        return exc.exit()
    for line in lines:
        print(line)
    return 0


def _days(args: argparse.Namespace, runtime: Runtime) -> float:
    return float(args.retention_days or runtime.settings.retention_days)
