"""The gate's inputs from real Redis and a forge: clearance.required on the base tip, and the
queue closed once and reopened once by mergebot's own events."""

from __future__ import annotations

from mergebot.forge.base import CheckResult, CheckState
from mergebot.gate import ClearanceState, HoldKind
from mergebot.gatekeeper import Gatekeeper
from mergebot.runtime import Runtime
from tests.brainkit import process
from tests.fakeforge import FakeForge
from tests.gitutil import GitRemote
from tests.integrationkit import REPO, manage_remote

RED, GREEN = "1" * 40, "2" * 40


async def test_required_checks_on_the_base_tip_close_and_reopen_the_queue(
    runtime: Runtime, remote: GitRemote
) -> None:
    manage_remote(runtime, remote, clearance={"required": ["ci"]})
    forge = FakeForge()
    runtime.forge_override = lambda repo: forge
    config = runtime.server_config.repo(REPO)
    gate = Gatekeeper(runtime, REPO, "main")

    forge.set(RED, CheckResult("ci", CheckState.PENDING))
    pending = await gate.hold(config, RED)
    assert pending is not None
    assert (pending.kind, pending.check) == (HoldKind.BASE_PENDING, "ci")

    forge.set(RED, CheckResult("ci", CheckState.FAILURE, url="https://ci.example.com/9"))
    for _ in range(3):  # met again and again while it waits: closed once
        red = await gate.hold(config, RED)
        assert red is not None
        assert (red.kind, red.sha, red.check) == (HoldKind.RED_BASE, RED, "ci")
    await process(runtime)
    forge.set(GREEN, CheckResult("ci", CheckState.SUCCESS))
    assert await gate.hold(config, GREEN) is None
    clearance = await gate.clearance(config, GREEN)
    assert clearance is not None
    assert clearance.state is ClearanceState.GREEN
    names = [
        (e.envelope.name.value, e.envelope.payload.get("sha"))
        async for e in runtime.eventlog.replay(repo=REPO)
    ]
    assert names == [("queue_frozen", RED), ("queue_unfrozen", GREEN)]
