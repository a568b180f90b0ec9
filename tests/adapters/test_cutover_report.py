"""`cutover report` on a real remote: candidates merged by hand with a merge commit, squashed,
rebased, fast-forwarded, closed and left open, against the shadow decisions recorded for them.
Git is asked for real; only the forge's check results are a stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import NamedTuple

import pytest

from mergebot.config import parse_server_config
from mergebot.cutover_facts import EvidenceStore, cutover_report, evaluate, mode_decision
from mergebot.events import Envelope
from mergebot.forge.base import CheckResult, CheckState
from mergebot.gate import Clearance, ClearanceState
from mergebot.gatekeeper import clearance_json
from mergebot.runtime import Runtime
from tests.cutoverkit import REPO, ready, withdrawn, would_block, would_integrate
from tests.fakeforge import FakeForge
from tests.gitutil import GitRemote, git


def _by_hand(remote: GitRemote, *steps: tuple[str, ...]) -> str:
    """Run git steps in the work clone on main, push main, and return the new tip."""
    git(remote.work, "fetch", "-q", "origin")
    remote.checkout("main")
    for step in steps:
        git(remote.work, *step)
    return remote.push("main")


def _configure(runtime: Runtime, remote: GitRemote, extra: str = "") -> None:
    text = (
        f'[repos."{REPO}"]\nremote = "{remote.url}"\nforge = "git"\nmode = "live"\n'
        f'[repos."{REPO}".checks]\nrequired = ["ci"]\n{extra}'
    )
    runtime.server_config = parse_server_config(text, "mergebot.toml")


class Recorded(NamedTuple):
    forge: FakeForge
    events: list[Envelope]
    merge_1: str  # the merge commit people made for pr-1
    ff_4: str  # base after people fast-forwarded it to pr-4


@pytest.fixture
def recorded(runtime: Runtime, remote: GitRemote) -> Recorded:
    """Six candidates with known fates, their shadow decisions, and the forge's checks on base."""
    forge = FakeForge()
    runtime.forge_override = lambda repo: forge
    _configure(runtime, remote)
    shas = {
        slug: remote.branch_with(f"b/{slug}", f"{slug}.txt", f"{slug}\n")
        for slug in ("pr-1", "pr-2", "pr-3", "pr-4", "pr-6")
    }
    # pr-5: two commits, replayed onto main by hand (a rebase merge).
    remote.checkout("b/pr-5")
    remote.commit("pr-5a.txt", "a\n", "pr-5 first")
    shas["pr-5"] = remote.commit("pr-5b.txt", "b\n", "pr-5 second")
    remote.push("b/pr-5")

    merge_1 = _by_hand(remote, ("merge", "-q", "--no-ff", "origin/b/pr-1", "-m", "merge pr-1"))
    squash_2 = _by_hand(
        remote, ("merge", "-q", "--squash", "origin/b/pr-2"), ("commit", "-q", "-m", "pr-2")
    )
    # pr-4 was built on an older main: bring it up to date, then fast-forward main to it.
    remote.checkout("b/pr-4", create=False)
    git(remote.work, "merge", "-q", "origin/main", "-m", "update pr-4")
    shas["pr-4"] = remote.push("b/pr-4")
    ff_4 = _by_hand(remote, ("merge", "-q", "--ff-only", "origin/b/pr-4"))
    base = remote.rev("main")
    rebase_5 = _by_hand(remote, ("cherry-pick", f"{base}..origin/b/pr-5"))

    forge.set(merge_1, CheckResult("ci", CheckState.SUCCESS))
    forge.set(squash_2, CheckResult("ci", CheckState.SUCCESS))
    forge.set(shas["pr-4"], CheckResult("ci", CheckState.FAILURE, summary="test_x failed"))
    assert ff_4 == shas["pr-4"]
    forge.set(rebase_5, CheckResult("ci", CheckState.SUCCESS))

    events = [
        *(ready(slug, sha, 0) for slug, sha in shas.items()),
        would_integrate("pr-1", shas["pr-1"], 1),  # merged, green: agree
        would_integrate("pr-2", shas["pr-2"], 2),  # squashed, green: agree
        would_integrate("pr-3", shas["pr-3"], 3),  # closed by people: disagree
        withdrawn("pr-3", 30),
        would_block("pr-4", shas["pr-4"], 4),  # merged, base went red: agree
        would_block("pr-5", shas["pr-5"], 5, "merge_conflict"),  # rebased in, green: disagree
        would_integrate("pr-6", shas["pr-6"], 6),  # still open: not compared
    ]
    return Recorded(forge, events, merge_1, ff_4)


async def _store(runtime: Runtime, events: list[Envelope]) -> None:
    for envelope in events:
        await runtime.eventlog.append(envelope)


async def test_report_on_a_recorded_shadow_history(
    runtime: Runtime, remote: GitRemote, recorded: Recorded
) -> None:
    await _store(runtime, recorded.events)

    report = await cutover_report(runtime, REPO)

    rows = {c.decision.slug: c for c in report.comparisons}
    assert {slug: (c.agreement.value, c.outcome.value) for slug, c in rows.items()} == {
        "pr-1": ("agree", "merged"),
        "pr-2": ("agree", "merged"),
        "pr-3": ("disagree", "closed"),
        "pr-4": ("agree", "merged"),
        "pr-5": ("disagree", "merged"),
        "pr-6": ("not_compared", "open"),
    }
    assert report.parity == pytest.approx(3 / 5)
    assert rows["pr-1"].landing is not None
    assert rows["pr-1"].landing.how == "sha"
    assert rows["pr-1"].landing.commit == recorded.merge_1  # the merge that brought it
    assert rows["pr-2"].landing is not None
    assert rows["pr-2"].landing.how == "content"
    assert rows["pr-4"].landing is not None
    assert rows["pr-4"].landing.commit == rows["pr-4"].decision.sha
    assert "ci failed" in rows["pr-4"].why
    assert rows["pr-5"].landing is not None
    assert rows["pr-5"].landing.commit == remote.rev("main")
    assert "would have blocked it (merge_conflict)" in rows["pr-5"].why


async def test_the_gate_holds_a_live_request_below_the_bar(
    runtime: Runtime, remote: GitRemote, recorded: Recorded
) -> None:
    await _store(runtime, recorded.events)
    _configure(runtime, remote, f'[repos."{REPO}".cutover]\nmin_parity = 0.9\nmin_decisions = 5\n')
    before, _ = await mode_decision(runtime, REPO)
    assert before.mode.value == "shadow"
    assert "not evaluated" in before.reason

    decision = await evaluate(runtime, REPO)

    assert decision.held_back
    assert decision.reason == "stays in shadow: parity 60.0%, 90.0% needed"
    stored = await EvidenceStore(runtime).get(REPO)
    assert stored is not None
    assert (stored.decisions, stored.disagreements) == (5, 2)
    _configure(runtime, remote, f'[repos."{REPO}".cutover]\nmin_parity = 0.6\nmin_decisions = 5\n')
    assert (await mode_decision(runtime, REPO))[0].mode.value == "live"
    _configure(runtime, remote, f'[repos."{REPO}".cutover]\nmin_parity = 0.9\naccepted = true\n')
    assert (await mode_decision(runtime, REPO))[0].mode.value == "live"


async def test_cli_prints_parity_and_every_disagreement(
    runtime: Runtime,
    remote: GitRemote,
    recorded: Recorded,
    cli_env: dict[str, str],
    tmp_path: object,
) -> None:
    # The CLI asks the configured forge (a plain remote: no checks), so base health is unknown
    # and merging alone decides: pr-4 (would block, merged) becomes a disagreement.
    await _store(runtime, recorded.events)
    config = remote.work.parent / "mergebot.toml"
    config.write_text(
        f'[repos."{REPO}"]\nremote = "{remote.url}"\nforge = "git"\nmode = "shadow"\n'
    )
    cmd = [sys.executable, "-m", "mergebot", "cutover", "report", REPO]
    env = {**cli_env, "MERGEBOT_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=60)
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{REPO}: shadow decisions: 6, compared 5, agree 2, disagree 3"
    assert lines[1] == "parity: 40.0%"
    assert lines[2].startswith("mode: shadow (configured shadow)")
    assert [line.split()[0] for line in lines if line.startswith("  ")] == [
        "pr-3", "pr-4", "pr-5", "pr-6",
    ]  # fmt: skip

    as_json = subprocess.run(
        [*cmd, "--json", "--since", "2026-11-25T10:04:00+00:00"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report = json.loads(as_json.stdout)
    assert [r["slug"] for r in report["candidates"]] == ["pr-4", "pr-5", "pr-6"]
    assert report["parity"] == 0.0
    assert report["gate"]["held_back"] is False


def test_cli_refuses_an_unmanaged_repo(cli_env: dict[str, str]) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "mergebot", "cutover", "report", "nobody/here"],
        env={**cli_env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert shown.returncode == 1
    assert "nobody/here is not a managed repo" in shown.stderr


async def test_clearance_results_on_base_are_base_health(
    runtime: Runtime, remote: GitRemote, recorded: Recorded
) -> None:
    # A plain remote: no forge checks, but clearance commands ran on the base tips people made.
    recorded.forge.results.clear()
    await _store(runtime, recorded.events)
    gate = runtime.keys.gate(REPO, "main")
    when = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    red = Clearance(recorded.ff_4, ClearanceState.RED, "make test", "1 failed", when)
    green = Clearance(remote.rev("main"), ClearanceState.GREEN, at=when)
    await runtime.redis.hset(gate, recorded.ff_4, clearance_json(red))
    await runtime.redis.hset(gate, remote.rev("main"), clearance_json(green))

    rows = {c.decision.slug: c for c in (await cutover_report(runtime, REPO)).comparisons}

    assert rows["pr-4"].agreement.value == "agree"  # would block; base went red
    assert "clearance make test failed" in rows["pr-4"].why
    assert rows["pr-5"].agreement.value == "disagree"  # would block; base stayed green
    assert "clearance commands green" in rows["pr-5"].why
    assert "not known" in rows["pr-1"].why  # nothing ran on the merge commit
