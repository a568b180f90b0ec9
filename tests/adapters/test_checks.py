"""Check commands as real processes, and required checks woken by real Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mergebot.checks import (
    ChecksStatus,
    Reported,
    run_checks,
    run_command,
)
from mergebot.config import ChecksConfig
from mergebot.forge.base import CheckResult, CheckState
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.fakeforge import FakeForge
from tests.waiting import until

SHA = "c" * 40
REPO = "acme/widgets"


async def _run(
    config: ChecksConfig,
    tmp_path: Path,
    redis: RedisClient,
    keys: Keys,
    forge: FakeForge | None = None,
    *,
    shadow: bool = False,
    environ: dict[str, str] | None = None,
    poll_seconds: float = 60,
):
    return await run_checks(
        config,
        worktree=tmp_path,
        forge=forge or FakeForge(),
        repo=REPO,
        sha=SHA,
        prefix="mergebot/integration/",
        redis=redis,
        signal_channel=keys.check_signals(REPO),
        shadow=shadow,
        environ=environ if environ is not None else dict(os.environ),
        poll_seconds=poll_seconds,
    )


async def test_commands_run_in_the_worktree_and_a_failure_keeps_the_output_tail(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    (tmp_path / "marker.txt").write_text("here\n")
    config = ChecksConfig(
        commands=[
            "test -f marker.txt && echo first ok",
            "for i in $(seq 1 200); do echo noise $i; done; echo 'FAILED test_x' >&2; exit 3",
            "echo never runs > ran.txt",
        ]
    )
    outcome = await _run(config, tmp_path, redis, keys)
    assert outcome.status is ChecksStatus.FAILED
    assert [c.state for c in outcome.checks] == [Reported.PASSED, Reported.FAILED]
    failed = outcome.checks[1]
    assert failed.exit_code == 3
    assert failed.output_tail.endswith("noise 200\nFAILED test_x")
    assert "noise 1\n" not in failed.output_tail
    assert not (tmp_path / "ran.txt").exists()
    assert "exit code 3" in outcome.message


async def test_commands_never_see_mergebot_secrets(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    environ = {**os.environ, "MERGEBOT_API_TOKEN": "sekrit-api-token", "NPM_TOKEN": "npm-tok-1"}
    config = ChecksConfig(
        commands=["env | grep -c -E 'MERGEBOT_|NPM_TOKEN' || true; echo sekrit-api-token; exit 1"]
    )
    outcome = await _run(config, tmp_path, redis, keys, environ=environ)
    tail_text = outcome.checks[0].output_tail
    assert tail_text.splitlines() == ["0", "***"]


async def test_a_command_past_its_time_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    result = await run_command(
        f"sleep 60 & echo $! > {pidfile}; echo started; wait",
        tmp_path,
        time_limit=0.5,
        env=dict(os.environ),
    )
    assert result.timed_out
    assert time.monotonic() - started < 10
    assert result.output_tail == "started"
    child = int(pidfile.read_text())
    await until(
        lambda: not _alive(child), "the background child to die with the timeout", timeout=5
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by init) counts as dead.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


async def test_a_cancelled_check_is_reaped_by_asyncio_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A check cancelled mid-run (its car rebuilt, the lease lost) has its process group killed,
    and the killed command is then waited for by asyncio alone. Waiting for it anywhere else
    takes its exit status away from asyncio's child watcher, which logs "Unknown child process
    pid ..., will report returncode 255" and reports 255 instead of the kill.

    That happens only when the command is already dead, and not yet reaped by the watcher, the
    moment the cancelled run cleans up. So the test makes that moment certain: the group kill
    returns once the command is dead (not reaped), and the watcher reaps only after the event
    loop has run once more after the death."""
    loop = asyncio.get_running_loop()
    started: list[asyncio.subprocess.Process] = []
    real_exec, real_killpg, real_waitpid = asyncio.create_subprocess_exec, os.killpg, os.waitpid

    async def recording_exec(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await real_exec(*args, **kwargs)
        started.append(process)
        return process

    def killpg_until_dead(pgid: int, sig: int) -> None:
        real_killpg(pgid, sig)
        with contextlib.suppress(ChildProcessError):  # already reaped: nothing to wait for
            os.waitid(os.P_PID, pgid, os.WEXITED | os.WNOWAIT)

    def watcher_waitpid(pid: int, options: int) -> tuple[int, int]:
        if options == 0 and threading.current_thread() is not threading.main_thread():
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()
        return real_waitpid(pid, options)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    monkeypatch.setattr(os, "killpg", killpg_until_dead)
    monkeypatch.setattr(os, "waitpid", watcher_waitpid)
    run = asyncio.create_task(
        run_command("echo up; sleep 60", tmp_path, time_limit=60, env=dict(os.environ))
    )
    await until(lambda: bool(started), "the check command to start", timeout=10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert started[0].returncode == -signal.SIGKILL
    unknown = [r for r in caplog.records if "Unknown child process" in r.getMessage()]
    assert unknown == []


async def test_command_timeout_is_reported_as_checks_timeout(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    config = ChecksConfig(commands=["echo slow; sleep 30"], timeout_seconds=0.3)
    outcome = await _run(config, tmp_path, redis, keys)
    assert outcome.status is ChecksStatus.TIMEOUT
    assert outcome.checks[0].state is Reported.TIMEOUT
    assert outcome.checks[0].output_tail == "slow"


async def test_required_checks_wake_on_a_signal_not_on_the_poll(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    forge.set(SHA, CheckResult("ci", CheckState.PENDING))
    config = ChecksConfig(required=["ci"], timeout_seconds=120)
    task = asyncio.create_task(_run(config, tmp_path, redis, keys, forge, poll_seconds=60))
    await until(lambda: forge.calls > 0, "the waiter's first look at the forge", timeout=5)
    forge.set(SHA, CheckResult("ci", CheckState.SUCCESS, "https://ci/run/1"))
    # Publish until the waiter has subscribed and reacted (a signal is only a wake-up).
    deadline = time.monotonic() + 5
    while not task.done():
        assert time.monotonic() < deadline, "the signal did not wake the waiter"
        await redis.publish(keys.check_signals(REPO), SHA)
        await asyncio.wait({task}, timeout=0.05)
    outcome = task.result()
    assert outcome.status is ChecksStatus.PASSED
    assert outcome.checks[0].url == "https://ci/run/1"


async def test_a_signal_for_another_commit_does_not_decide(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    forge.set(SHA, CheckResult("ci", CheckState.PENDING))
    config = ChecksConfig(required=["ci"], timeout_seconds=0.6)
    task = asyncio.create_task(_run(config, tmp_path, redis, keys, forge, poll_seconds=60))
    await redis.publish(keys.check_signals(REPO), "d" * 40)
    outcome = await asyncio.wait_for(task, timeout=10)
    assert outcome.status is ChecksStatus.TIMEOUT
    assert "ci" in outcome.message


async def test_required_check_never_created_is_missing_with_a_diagnosis(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    forge.recent = {"unit-tests"}
    config = ChecksConfig(required=["unit-test"], discovery_timeout_seconds=0.2)
    outcome = await asyncio.wait_for(_run(config, tmp_path, redis, keys, forge), timeout=10)
    assert outcome.status is ChecksStatus.MISSING
    assert outcome.checks[0].state is Reported.MISSING
    assert "no check named 'unit-test'" in outcome.message
    assert "'unit-tests'" in outcome.message


async def test_a_failed_required_check_blocks_with_its_link(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    forge.set(
        SHA,
        CheckResult("ci", CheckState.FAILURE, "https://ci/run/9", "2 failed"),
        CheckResult("lint", CheckState.SUCCESS),
    )
    config = ChecksConfig(commands=["true"], required=["ci", "lint"])
    outcome = await _run(config, tmp_path, redis, keys, forge)
    assert outcome.status is ChecksStatus.FAILED
    details = outcome.details()
    assert details["checks"] == [
        {
            "name": "ci",
            "kind": "required",
            "state": "failed",
            "url": "https://ci/run/9",
            "output_tail": "2 failed",
            "exit_code": None,
            "seconds": None,
        }
    ]


async def test_shadow_mode_reports_would_wait_for_forge_checks(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    config = ChecksConfig(commands=["true"], required=["ci"])
    outcome = await _run(config, tmp_path, redis, keys, forge, shadow=True)
    assert outcome.passed
    assert [c.state for c in outcome.checks] == [Reported.PASSED, Reported.WOULD_WAIT]
    assert forge.calls == 0


@pytest.mark.parametrize("command", ["exit 0", "true"])
async def test_passing_commands_pass(
    command: str, tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    outcome = await _run(ChecksConfig(commands=[command]), tmp_path, redis, keys)
    assert outcome.passed


# -- checks.retry_failed -----------------------------------------------------------------------


def _fails_first(name: str, tmp_path: Path, times: int = 1) -> str:
    """A command that fails its first `times` runs and passes after; logs each run."""
    runs = tmp_path / f"{name}.runs"
    return f'echo run >> "{runs}"; [ "$(wc -l < "{runs}")" -gt {times} ]'


def _runs(name: str, tmp_path: Path) -> int:
    path = tmp_path / f"{name}.runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


async def test_a_failed_command_runs_again_from_where_it_failed_and_a_pass_is_flaky(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    before = f'echo run >> "{tmp_path / "before.runs"}"'
    flaky = _fails_first("flaky", tmp_path, times=2)
    config = ChecksConfig(commands=[before, flaky], retry_failed=2)
    outcome = await _run(config, tmp_path, redis, keys, poll_seconds=0.05)
    assert outcome.passed
    assert (outcome.flaky, outcome.reruns) == ([flaky], 2)
    assert (_runs("before", tmp_path), _runs("flaky", tmp_path)) == (1, 3)
    assert [c.name for c in outcome.checks] == [before, flaky]


async def test_retries_run_out_and_the_failure_stands_with_how_often_it_ran(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    config = ChecksConfig(commands=[_fails_first("red", tmp_path, times=5)], retry_failed=2)
    outcome = await _run(config, tmp_path, redis, keys, poll_seconds=0.05)
    assert outcome.status is ChecksStatus.FAILED
    assert (outcome.flaky, outcome.reruns, _runs("red", tmp_path)) == ([], 2, 3)
    assert outcome.details()["reruns"] == 2


async def test_a_flake_never_passes_by_itself(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    flaky = _fails_first("flaky", tmp_path)
    config = ChecksConfig(commands=[flaky, "false"], retry_failed=1)
    outcome = await _run(config, tmp_path, redis, keys, poll_seconds=0.05)
    assert outcome.status is ChecksStatus.FAILED
    assert outcome.flaky == [flaky]  # it did fail and then pass on this commit
    assert [(c.name, c.state) for c in outcome.checks] == [
        (flaky, Reported.PASSED),
        ("false", Reported.FAILED),
    ]


async def test_a_failed_forge_check_is_requested_again_and_its_old_result_ignored(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    red = CheckResult("ci", CheckState.FAILURE, "https://ci/run/1", "1 failed")
    forge.set(SHA, red, CheckResult("lint", CheckState.SUCCESS, "https://ci/run/2"))
    # Right after the request the forge still shows the old failure…
    forge.after_rerun[SHA] = [red, CheckResult("lint", CheckState.SUCCESS, "https://ci/run/2")]
    config = ChecksConfig(
        commands=[f'echo run >> "{tmp_path / "cmd.runs"}"'], required=["ci", "lint"], retry_failed=1
    )
    task = asyncio.ensure_future(_run(config, tmp_path, redis, keys, forge, poll_seconds=0.05))
    await until(lambda: forge.reruns == [(SHA, ["ci"])], "the failed check re-requested")
    asked = forge.calls
    await until(lambda: forge.calls >= asked + 3, "the forge asked again, several times")
    assert not task.done()  # …which is not taken for the new run's answer
    forge.set(
        SHA,
        CheckResult("ci", CheckState.SUCCESS, "https://ci/run/3"),
        CheckResult("lint", CheckState.SUCCESS, "https://ci/run/2"),
    )
    outcome = await asyncio.wait_for(task, timeout=10)
    assert outcome.passed
    assert outcome.flaky == ["ci"]
    assert _runs("cmd", tmp_path) == 1  # the commands passed on this tree: not run again


async def test_a_failed_forge_check_whose_re_run_is_refused_stands_and_says_so(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    forge.set(
        SHA,
        CheckResult("ci", CheckState.FAILURE, "https://ci/run/1", "1 failed"),
        CheckResult("e2e", CheckState.FAILURE, "https://ci/run/2", "2 failed"),
    )
    forge.refuse_rerun = {"ci"}  # e.g. GitHub's 403 for a missing permission
    config = ChecksConfig(required=["ci", "e2e"], retry_failed=3, timeout_seconds=60)
    outcome = await _run(config, tmp_path, redis, keys, forge, poll_seconds=0.05)
    assert outcome.status is ChecksStatus.FAILED
    assert forge.reruns == [(SHA, ["ci", "e2e"])]  # asked once; the refusal ends the retries
    assert (outcome.reruns, outcome.rerun_refused, outcome.flaky) == (0, ["ci"], [])
    assert outcome.details()["rerun_refused"] == ["ci"]  # the follow-up names it


async def test_a_check_the_forge_re_runs_only_later_is_asked_again_when_ci_moves(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    """GitHub re-runs a job only once its whole workflow run finished: the early failure stays
    pending and the re-run is asked again at each check signal, until it is accepted."""
    forge = FakeForge()
    red = CheckResult("build", CheckState.FAILURE, "https://ci/run/1", "1 failed")
    forge.set(SHA, red, CheckResult("e2e", CheckState.PENDING, "https://ci/run/2"))
    forge.rerun_later = {"build"}  # its workflow run still runs e2e
    config = ChecksConfig(required=["build", "e2e"], retry_failed=1, timeout_seconds=60)
    # Polled once a minute: only the signals below can wake it within the test.
    task = asyncio.ensure_future(_run(config, tmp_path, redis, keys, forge, poll_seconds=60))
    await until(lambda: forge.reruns == [(SHA, ["build"])], "the re-run asked for")
    await redis.publish(keys.check_signals(REPO), SHA)  # e2e moved; the run is not done yet
    await until(lambda: len(forge.reruns) == 2, "the re-run asked for again")
    assert not task.done()  # the failure is not the outcome while the re-run may come

    forge.rerun_later.clear()  # the workflow run finished: e2e passed
    forge.set(SHA, red, CheckResult("e2e", CheckState.SUCCESS, "https://ci/run/2"))
    forge.after_rerun[SHA] = [
        CheckResult("build", CheckState.SUCCESS, "https://ci/run/3"),
        CheckResult("e2e", CheckState.SUCCESS, "https://ci/run/2"),
    ]
    await redis.publish(keys.check_signals(REPO), SHA)
    outcome = await asyncio.wait_for(task, timeout=10)
    assert outcome.passed
    assert (outcome.flaky, outcome.reruns, outcome.rerun_timed_out) == (["build"], 1, [])
    assert forge.reruns == [(SHA, ["build"])] * 3


async def test_a_check_not_re_runnable_before_the_timeout_fails_and_says_why(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    forge = FakeForge()
    forge.set(
        SHA,
        CheckResult("build", CheckState.FAILURE, "https://ci/run/1", "1 failed"),
        CheckResult("e2e", CheckState.PENDING, "https://ci/run/2"),
    )
    forge.rerun_later = {"build"}  # the workflow run never finishes
    config = ChecksConfig(required=["build", "e2e"], retry_failed=2, timeout_seconds=0.5)
    outcome = await _run(config, tmp_path, redis, keys, forge, poll_seconds=60)
    assert outcome.status is ChecksStatus.FAILED
    assert (outcome.reruns, outcome.rerun_refused, outcome.rerun_timed_out) == (0, [], ["build"])
    assert len(forge.reruns) >= 2  # asked at first, and once more when the time was up
    assert outcome.details()["rerun_timed_out"] == ["build"]  # the follow-up says why


async def test_a_re_requested_run_updated_in_place_gives_the_new_answer(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    """GitHub's documented answer to a re-request: the owning app updates that same check run
    (same link). A success there passes; a new failure there (a new start) fails at once."""
    first = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    red = CheckResult("ci", CheckState.FAILURE, "https://ci/run/1", "1 failed", first)
    for again, passes in (
        (replace(red, state=CheckState.SUCCESS, summary="ok"), True),
        (replace(red, started_at=first + timedelta(minutes=1)), False),
    ):
        forge = FakeForge()
        forge.set(SHA, red)
        forge.after_rerun[SHA] = [red]
        config = ChecksConfig(required=["ci"], retry_failed=1, timeout_seconds=60)
        task = asyncio.ensure_future(_run(config, tmp_path, redis, keys, forge, poll_seconds=0.05))
        await until(lambda f=forge: f.reruns == [(SHA, ["ci"])], "the failed check re-requested")
        asked = forge.calls
        await until(lambda f=forge, n=asked: f.calls >= n + 3, "the forge asked again")
        assert not task.done()  # the old failure, unchanged, is not the re-run's answer
        forge.set(SHA, again)
        outcome = await asyncio.wait_for(task, timeout=10)
        assert outcome.passed is passes
        assert outcome.flaky == (["ci"] if passes else [])
        if not passes:
            assert outcome.status is ChecksStatus.FAILED
            assert outcome.reruns == 1


async def test_each_check_is_announced_as_it_starts(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    """The integrator records the announced check, so the dashboard says what runs now."""
    started: list[tuple[str, str]] = []

    async def on_check(name: str, kind: str) -> None:
        started.append((name, kind))

    config = ChecksConfig(commands=["true", "exit 1", "echo never"])
    outcome = await run_checks(
        config, worktree=tmp_path, forge=FakeForge(), repo=REPO, sha=SHA,
        prefix="mergebot/integration/", redis=redis, signal_channel=keys.check_signals(REPO),
        shadow=True, on_check=on_check,
    )  # fmt: skip
    assert not outcome.passed
    assert started == [("true", "command"), ("exit 1", "command")]  # not the one never run
