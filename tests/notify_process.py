"""Run only the notifier as a process (for kill/restart tests): `python -m tests.notify_process
<consumer>` with MERGEBOT_REDIS_URL, MERGEBOT_KEY_PREFIX and MERGEBOT_CONFIG set; fast retries."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from mergebot.config import load_settings
from mergebot.notify.delivery import DeliveryPolicy, Notifier
from mergebot.runtime import open_runtime

POLICY = DeliveryPolicy(
    max_attempts=3, backoff_base=0.05, timeout=60.0, block_ms=50, discover_seconds=0.1
)


async def main(consumer: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_runtime(load_settings()) as runtime:
        await Notifier(runtime, policy=POLICY, consumer=consumer).run(stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    asyncio.run(main(sys.argv[1]))
