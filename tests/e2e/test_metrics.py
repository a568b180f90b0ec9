"""`/metrics` after an end-to-end run on a real remote: a shadow decision that people merged by
hand, the cutover judged, a crashed lease holder taken over, one candidate landed live, one
blocked on a conflict, one waiting for approval, a freeze — every documented metric is in the
scrape with the value the run implies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mergebot.cutover_facts import evaluate
from mergebot.integrator import IntegratorHook
from mergebot.main import create_app
from mergebot.runtime import Runtime
from mergebot.store.lease import Lease
from mergebot.telemetry import CATALOGUE
from tests.conftest import API_TOKEN
from tests.gitutil import GitRemote, git
from tests.integrationkit import (
    REPO,
    T0,
    Cand,
    candidate_events,
    items,
    make_candidate,
    manage_remote,
    outcome_events,
    process,
)
from tests.waiting import until

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
Client = TestClient[web.Request, web.Application]
Scrape = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def scrape(client: Client) -> Scrape:
    response = await client.get("/metrics")
    assert response.status == 200
    found: Scrape = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: Scrape, metric: str, **labels: str) -> float:
    return found[metric][tuple(sorted(labels.items()))]


async def run(runtime: Runtime, hook: IntegratorHook, client: Client, *cands: Cand) -> None:
    body = [
        e for c in cands for e in candidate_events(c, int(c.slug[-1]), approve=c.slug != "pr-3")
    ]
    response = await client.post("/events", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    await process(runtime)
    await asyncio.wait_for(hook.idle(), timeout=60)


async def test_every_documented_metric_after_an_end_to_end_run(
    runtime: Runtime,
    remote: GitRemote,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    hook = IntegratorHook(runtime)
    runtime.ready_hook = hook
    client = await aiohttp_client(create_app(runtime))
    try:
        await _story(runtime, remote, hook, client)
    finally:
        await hook.close()
        runtime.close_mirrors()


async def _story(runtime: Runtime, remote: GitRemote, hook: IntegratorHook, client: Client) -> None:
    checks = {"commands": ["true"]}
    # Shadow: pr-0 would integrate; people merge it by hand.
    manage_remote(runtime, remote, mode="shadow", checks=checks)
    zero = make_candidate(remote, "pr-0", "zero.txt", "0\n")
    await run(runtime, hook, client, zero)
    git(remote.work, "fetch", "-q", "origin")
    remote.checkout("main")
    git(remote.work, "merge", "-q", "--no-ff", zero.sha, "-m", "merged by hand")
    remote.push("main")

    # Live behind a bar the record meets (pr-0 merged: parity 1.0 over 1 decision).
    bar = {"cutover.min_parity": 0.5, "cutover.min_decisions": 1, "pipeline.depth": 2}
    manage_remote(runtime, remote, mode="live", checks=checks, **bar)
    assert not (await evaluate(runtime, REPO)).held_back

    # A holder that crashed: its lease runs out without a release; the next one takes over.
    crashed = Lease(runtime.redis, runtime.keys, REPO, "main", "crashed", 0.2, 0.1)
    assert await crashed.acquire()
    await until(_free(crashed), what="the crashed lease to run out")

    one = make_candidate(remote, "pr-1", "shared.txt", "one\n")
    two = make_candidate(remote, "pr-2", "shared.txt", "two\n")  # conflicts with pr-1
    three = make_candidate(remote, "pr-3", "three.txt", "3\n")  # never approved: waiting
    await run(runtime, hook, client, one, two, three)
    assert {s: i.status.value for s, i in (await items(runtime)).items()} == {
        "pr-0": "integrated", "pr-1": "integrated", "pr-2": "blocked",
    }  # fmt: skip

    freeze = {"name": "queue_frozen", "id": "freeze-1", "repo": REPO, "base": "main",
              "reason": "release", "by": "ops", "at": T0.isoformat()}  # fmt: skip
    assert (await client.post("/events", json=freeze, headers=AUTH)).status == 201
    assert (await client.post("/events", json=freeze, headers=AUTH)).status == 201  # duplicate
    assert (await client.post("/events", json={"name": "nope"}, headers=AUTH)).status == 422
    await process(runtime)

    found = await scrape(client)

    exposed = {s.exposed for s in CATALOGUE}
    assert exposed <= {_family(name) for name in found}
    repo = {"repo": REPO}
    for status, expected in (("waiting", 1), ("queued", 0), ("in_progress", 0), ("blocked", 1)):
        assert value(found, "mergebot_queue_length", status=status, **repo) == expected, status
    assert value(found, "mergebot_lease_holder", owner="", **repo) == 0
    assert value(found, "mergebot_lease_takeovers_total", **repo) == 1
    assert value(found, "mergebot_dead_letters", **repo) == 0
    assert value(found, "mergebot_train_window", **repo) == 2
    assert value(found, "mergebot_train_cars_in_flight", **repo) == 0  # the run is over
    assert value(found, "mergebot_cutover_held_back", **repo) == 0
    assert value(found, "mergebot_cutover_parity", **repo) == 1.0
    assert value(found, "mergebot_flaky_checks_total", **repo) == 0
    outcomes = found["mergebot_outcomes_total"]
    assert outcomes == {
        _labels(mode="shadow", outcome="integrated", reason="landed", **repo): 1,
        _labels(mode="live", outcome="integrated", reason="landed", **repo): 1,
        _labels(mode="live", outcome="blocked", reason="merge_conflict", **repo): 1,
    }
    landed = next(e for e in await outcome_events(runtime) if e["slug"] == "pr-1")
    waited = datetime.fromisoformat(landed["integrated_at"]) - (T0 + timedelta(minutes=1))
    assert value(found, "mergebot_ready_to_landed_seconds_count", **repo) == 1
    assert value(found, "mergebot_ready_to_landed_seconds_sum", **repo) == waited.total_seconds()
    assert value(found, "mergebot_ready_to_landed_seconds_bucket", le="+Inf", **repo) == 1
    passed = {"kind": "command", "state": "passed", **repo}
    assert value(found, "mergebot_check_duration_seconds_count", **passed) == 2  # pr-0, pr-1
    assert value(found, "mergebot_freezes_total", **repo) == 1
    frozen = {dict(k)["kind"]: v for k, v in found["mergebot_queue_frozen"].items()}
    assert frozen == {"frozen": 1, "window": 0, "red_base": 0, "base_pending": 0}
    accepted = found["mergebot_events_accepted_total"]
    assert accepted[_labels(source="api", name="finalize_ready")] == 4
    assert accepted[_labels(source="api", name="queue_frozen")] == 1
    assert value(found, "mergebot_events_duplicate_total", source="api", name="queue_frozen") == 1
    refused = found["mergebot_events_refused_total"]
    assert sum(refused.values()) == 1
    assert (
        value(found, "mergebot_http_requests_total", method="POST", route="/events", status="201")
        == 4
    )

    # A second scrape folds nothing twice.
    again = await scrape(client)
    assert again["mergebot_outcomes_total"] == outcomes


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _family(sample_name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_created"):
        if sample_name.endswith(suffix):
            return sample_name.removesuffix(suffix)
    return sample_name


def _free(lease: Lease) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await lease.holder() is None

    return check
