"""The queue's gauges read from the stored state: the train as the lease holder published it."""

from __future__ import annotations

import json

from mergebot.config import parse_server_config
from mergebot.runtime import Runtime
from mergebot.store.lease import Lease
from mergebot.telemetry import Sample
from mergebot.telemetry_state import read_state

REPO = "acme/widgets"


def car(position: int, slug: str) -> dict[str, object]:
    member = {"slug": slug, "sha": f"{position:040x}"}
    return {"position": position, "members": [member], "parent": None, "commit": None}


async def test_train_window_and_cars_in_flight_follow_the_lease_holder(runtime: Runtime) -> None:
    table = 'remote = "/nowhere"\npipeline = { depth = 2, max_depth = 6, adaptive = true }\n'
    runtime.server_config = parse_server_config(f'[repos."{REPO}"]\n{table}', "mergebot.toml")
    state = {"window": 3, "cars": [car(1, "pr-1"), car(2, "pr-2")]}
    await runtime.redis.hset(runtime.keys.train(REPO, "main"), "state", json.dumps(state))

    def train(samples: list[Sample]) -> dict[str, float]:
        return {s.name: s.value for s in samples if s.name.startswith("mergebot_train")}

    # Published by a holder that is gone: nothing is in flight, the window is the configured one.
    assert train(await read_state(runtime)) == {
        "mergebot_train_window": 2, "mergebot_train_cars_in_flight": 0,
    }  # fmt: skip
    lease = Lease(runtime.redis, runtime.keys, REPO, "main", "integrator-1")
    assert await lease.acquire()
    assert train(await read_state(runtime)) == {
        "mergebot_train_window": 3, "mergebot_train_cars_in_flight": 2,
    }  # fmt: skip
    assert await lease.release()
