"""Checks of an integration commit: local commands, and the forge's required checks.

`checks.commands` are shell commands from the configuration (the operator's server file or the
repo's own `.github/mergebot.toml`, as trusted as a CI file). Each runs as `bash -c <command>`
(`sh -c` where bash is missing) — one argv element, so pipes and `&&` work as users expect, and
nothing from events (branch names, slugs) is ever spliced into it. A command runs in the
integration worktree, in its own process group (a timeout kills everything it started), with an
environment stripped of mergebot's settings and of anything that looks like a secret; the tail of
its output is kept, with secret values masked.

`checks.required` are names of CI statuses / check runs that the forge must report green on the
pushed integration commit. mergebot asks `forge.check_results` when a wake-up arrives on
`keys.check_signals(repo)` (published by the webhook tier) and, as a fallback, every
`poll_seconds`. Outcomes: every required check green → passed; one failed → `checks_failed`;
one never *created* within `discovery_timeout_seconds` → `checks_missing` with a diagnosis; one
created but unfinished at `timeout_seconds` → `checks_timeout`. A check that never appears never
passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from redis.asyncio.client import PubSub

from mergebot.config import ChecksConfig
from mergebot.forge.base import CheckResult, CheckState, Forge, RerunAnswer
from mergebot.sandbox import Launch, Sandbox, SandboxError
from mergebot.store.connection import RedisClient, subscribe

log = logging.getLogger("mergebot.checks")

TAIL_CHARS = 4000
TAIL_LINES = 60
DEFAULT_POLL_SECONDS = 30.0
RECENT_DAYS = 7
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|PRIVATE_KEY|API_KEY|APIKEY|CREDENTIAL|ASKPASS|WEBHOOK", re.I
)


class ChecksStatus(StrEnum):
    PASSED = "passed"
    FAILED = "checks_failed"
    MISSING = "checks_missing"
    TIMEOUT = "checks_timeout"


class Reported(StrEnum):
    """The state of one check in a report (what people read in a follow-up)."""

    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MISSING = "missing"
    PENDING = "pending"
    WOULD_WAIT = "would_wait"  # shadow mode: forge checks need a pushed commit


@dataclass(frozen=True)
class CheckReport:
    name: str
    kind: str  # "command" or "required"
    state: Reported
    url: str | None = None
    output_tail: str = ""
    exit_code: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ChecksOutcome:
    status: ChecksStatus
    checks: list[CheckReport] = field(default_factory=list)
    message: str = ""
    missing: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)  # failed, then passed on this commit
    reruns: int = 0  # how many times failed checks were run again (`checks.retry_failed`)
    # Failed forge checks whose re-run the forge refused or has no call for (a commit status):
    # their failure stands without the re-runs `checks.retry_failed` allowed.
    rerun_refused: list[str] = field(default_factory=list)
    # Failed forge checks the forge would re-run only later (their workflow run still ran) and
    # still would not when `timeout_seconds` ran out: their failure stands too.
    rerun_timed_out: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status is ChecksStatus.PASSED

    def details(self) -> dict[str, Any]:
        """The `details` of an `integration_blocked` event: the checks that did not pass (with
        link and output tail), the missing ones and the diagnosis or message."""
        failed = [c.to_dict() for c in self.checks if c.state is not Reported.PASSED]
        out: dict[str, Any] = {"checks": failed or [c.to_dict() for c in self.checks]}
        if self.reruns:
            out["reruns"] = self.reruns
        if self.rerun_refused:
            out["rerun_refused"] = list(self.rerun_refused)
        if self.rerun_timed_out:
            out["rerun_timed_out"] = list(self.rerun_timed_out)
        if self.missing:
            out["missing"] = list(self.missing)
            out["diagnosis"] = self.message
        else:
            out["message"] = self.message
        return out


# -- command checks ----------------------------------------------------------------------------


def check_env(
    environ: Mapping[str, str], extra_secret_names: Iterable[str] = ()
) -> tuple[dict[str, str], list[str]]:
    """The environment for a check command, and the secret values to mask in its output.

    Drops every `MERGEBOT_*` variable and every variable whose name looks like a credential
    (token, secret, password, key…), plus `extra_secret_names` (the variables notify sinks read).
    """
    extra = set(extra_secret_names)
    env: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in environ.items():
        secret_like = bool(_SECRET_NAME.search(name)) or name in extra
        if name.startswith("MERGEBOT_") or secret_like:
            if (secret_like or name.endswith(("_KEY", "_URL"))) and len(value) >= 4:
                secrets.append(value)
            continue
        env[name] = value
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env, sorted(set(secrets), key=len, reverse=True)


def mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def tail(text: str, *, chars: int = TAIL_CHARS, lines: int = TAIL_LINES) -> str:
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return kept[-chars:]


def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None: killed at the timeout
    output_tail: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_command(
    command: str,
    cwd: Path,
    *,
    time_limit: float,
    env: Mapping[str, str],
    secrets: Sequence[str] = (),
    sandbox: Sandbox | None = None,
) -> CommandResult:
    """Run one check command (as `sandbox` says: as whom, in what); its whole process group is
    killed at the timeout (or when the caller is cancelled, e.g. because the lease was lost)."""
    try:
        with (sandbox or Sandbox()).launch([_shell(), "-c", command], cwd, env) as launch:
            return await _run_launched(command, launch, cwd, time_limit=time_limit, secrets=secrets)
    except SandboxError as exc:  # the command cannot be started as configured: it failed
        return CommandResult(command, 126, str(exc), 0.0)


async def _run_launched(
    command: str, launch: Launch, cwd: Path, *, time_limit: float, secrets: Sequence[str]
) -> CommandResult:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *launch.argv,
        cwd=cwd,
        env=launch.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        **launch.options,
    )
    kept = bytearray()
    limit = TAIL_CHARS * 8

    async def collect() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            kept.extend(chunk)
            if len(kept) > limit:
                del kept[: len(kept) - limit]

    reader = asyncio.ensure_future(collect())
    exit_code: int | None
    try:
        exit_code = await asyncio.wait_for(process.wait(), timeout=max(time_limit, 0.001))
    except TimeoutError:
        exit_code = None
    finally:
        # Kill the whole group: on a timeout, and also whatever a finished command left running
        # in the background (it would hold the output pipe open). The command leads its own
        # session, so it cannot leave the group: the group kill reaches it. It is not killed a
        # second time with `process.kill()`: that polls first (`Popen.send_signal`), which reaps
        # an already dead command behind the child watcher's back, and the watcher then logs
        # "Unknown child process pid ..., will report returncode 255". Only asyncio waits for it.
        _kill_group(process)
        if process.returncode is None:
            await process.wait()
        try:
            await asyncio.wait_for(reader, timeout=5)
        except TimeoutError:
            log.warning("check_output_left_open command_pid=%d", process.pid)
    output = mask(kept.decode("utf-8", errors="replace"), secrets)
    return CommandResult(command, exit_code, tail(output), round(time.monotonic() - started, 3))


# Told which check starts (its name and kind: "command" or "required"), so people can see what
# runs now and for how long (the integrator records it on the attempt; the dashboard shows it).
OnCheck = Callable[[str, str], Awaitable[None]]


async def run_commands(
    commands: Sequence[str],
    cwd: Path,
    *,
    deadline: float,
    env: Mapping[str, str],
    secrets: Sequence[str] = (),
    sandbox: Sandbox | None = None,
    on_check: OnCheck | None = None,
) -> ChecksOutcome:
    """Run the commands in order until one fails; `deadline` is a `time.monotonic()` value."""
    reports: list[CheckReport] = []
    for command in commands:
        if on_check is not None:
            await on_check(command, "command")
        result = await run_command(
            command,
            cwd,
            time_limit=deadline - time.monotonic(),
            env=env,
            secrets=secrets,
            sandbox=sandbox,
        )
        if result.timed_out:
            reports.append(
                CheckReport(
                    command,
                    "command",
                    Reported.TIMEOUT,
                    None,
                    result.output_tail,
                    None,
                    result.seconds,
                )
            )
            return ChecksOutcome(
                ChecksStatus.TIMEOUT, reports, f"command {command!r} did not finish in time"
            )
        state = Reported.PASSED if result.exit_code == 0 else Reported.FAILED
        reports.append(
            CheckReport(
                command,
                "command",
                state,
                None,
                result.output_tail,
                result.exit_code,
                result.seconds,
            )
        )
        if state is Reported.FAILED:
            return ChecksOutcome(
                ChecksStatus.FAILED,
                reports,
                f"command {command!r} failed with exit code {result.exit_code}",
            )
    return ChecksOutcome(ChecksStatus.PASSED, reports)


# -- required (forge) checks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the reported results mean right now (`status` None: keep waiting)."""

    status: ChecksStatus | None
    reports: list[CheckReport]
    missing: list[str]
    wake_in: float  # seconds until a deadline passes, when still waiting


def evaluate(
    required: Sequence[str],
    results: Sequence[CheckResult],
    elapsed: float,
    *,
    timeout: float,
    discovery_timeout: float,
) -> Verdict:
    """Pure decision over the forge's latest results for the integration commit."""
    latest = {r.name: r for r in results}
    reports: list[CheckReport] = []
    missing: list[str] = []
    failed = pending = False
    for name in required:
        found = latest.get(name)
        if found is None:
            missing.append(name)
            reports.append(CheckReport(name, "required", Reported.MISSING))
            continue
        state = {
            CheckState.SUCCESS: Reported.PASSED,
            CheckState.FAILURE: Reported.FAILED,
            CheckState.PENDING: Reported.PENDING,
        }[found.state]
        failed |= state is Reported.FAILED
        pending |= state is Reported.PENDING
        reports.append(CheckReport(name, "required", state, found.url, found.summary[-TAIL_CHARS:]))
    if failed:
        return Verdict(ChecksStatus.FAILED, reports, missing, 0)
    if not missing and not pending:
        return Verdict(ChecksStatus.PASSED, reports, missing, 0)
    if missing and (elapsed >= discovery_timeout or elapsed >= timeout):
        return Verdict(ChecksStatus.MISSING, reports, missing, 0)
    if elapsed >= timeout:
        timed = [
            CheckReport(r.name, r.kind, Reported.TIMEOUT, r.url, r.output_tail)
            if r.state is Reported.PENDING
            else r
            for r in reports
        ]
        return Verdict(ChecksStatus.TIMEOUT, timed, missing, 0)
    deadlines = [timeout] + ([discovery_timeout] if missing else [])
    return Verdict(None, reports, missing, max(min(deadlines) - elapsed, 0.0))


def diagnose_missing(missing: Sequence[str], recent: set[str], prefix: str, sha: str) -> str:
    """A sentence per missing check that tells people what to look at."""
    sentences = []
    for name in missing:
        if name in recent:
            sentences.append(
                f"check {name!r} ran on other {prefix}** commits in the last {RECENT_DAYS} days "
                f"but was never created for {sha[:7]} — is CI overloaded, or skipped for this "
                "change (path filters, [skip ci] in a commit message)?"
            )
            continue
        close = difflib.get_close_matches(name, sorted(recent), n=1)
        hint = f" (a check named {close[0]!r} was — a typo in checks.required?)" if close else ""
        sentences.append(
            f"no check named {name!r} was reported for any {prefix}** commit in the last "
            f"{RECENT_DAYS} days{hint} — is your CI triggered on pushes to `{prefix}**`?"
        )
    return " ".join(sentences)


class CheckSignals:
    """Wake-ups for one repo's check results (a pub/sub subscription), opened before the first
    look at the forge so no signal between the look and the wait is missed."""

    def __init__(self, redis: RedisClient, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._pubsub: PubSub | None = None

    async def __aenter__(self) -> CheckSignals:
        self._pubsub = await subscribe(self._redis, self._channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pubsub is None:
            return
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe(self._channel)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def wait(self, sha: str, seconds: float) -> bool:
        """True when a signal for `sha` arrived within `seconds`."""
        assert self._pubsub is not None, "wait() outside `async with`"
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message and str(message.get("data")) in (sha, "*"):
                return True
        return False


async def wait_required(
    forge: Forge,
    repo: str,
    sha: str,
    required: Sequence[str],
    *,
    started: float,
    limit_seconds: float,
    discovery_seconds: float,
    prefix: str,
    signals: CheckSignals | None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    stale: Collection[CheckResult] = (),
) -> ChecksOutcome:
    """Wait until the forge's results for `sha` decide the required checks. A result in
    `stale` (a failure whose re-run was requested) counts as still pending."""
    while True:
        try:
            results = await forge.check_results(repo, sha)
            results = [
                replace(r, state=CheckState.PENDING) if _is_stale(r, stale) else r for r in results
            ]
        except Exception as exc:  # a forge hiccup is not a verdict; the deadline still holds
            log.warning(
                "check_results_failed repo=%s sha=%s error=%s", repo, sha, type(exc).__name__
            )
            results = None
        verdict = evaluate(
            required,
            results or [],
            clock() - started,
            timeout=limit_seconds,
            discovery_timeout=discovery_seconds,
        )
        if results is None and verdict.status is ChecksStatus.MISSING:
            verdict = Verdict(ChecksStatus.TIMEOUT, verdict.reports, verdict.missing, 0)
        if verdict.status is not None:
            return await _outcome(forge, repo, sha, verdict, prefix)
        wait = min(verdict.wake_in, poll_seconds) + 0.01
        if signals is None:
            await asyncio.sleep(wait)
        else:
            await signals.wait(sha, wait)


def _is_stale(result: CheckResult, stale: Collection[CheckResult]) -> bool:
    """Still the failure whose re-run was requested: the same run (a new run has a link of its
    own), neither reset nor finished otherwise since (GitHub's documented answer to a
    re-request is the owning app updating that same run)."""
    return any(
        result.name == old.name
        and result.url == old.url
        and result.state is old.state
        and (old.started_at is None or result.started_at == old.started_at)
        for old in stale
    )


async def _outcome(
    forge: Forge, repo: str, sha: str, verdict: Verdict, prefix: str
) -> ChecksOutcome:
    status = verdict.status
    assert status is not None
    if status is ChecksStatus.MISSING:
        try:
            recent = await forge.recent_check_names(repo, prefix, RECENT_DAYS)
        except Exception as exc:
            log.warning("recent_check_names_failed repo=%s error=%s", repo, type(exc).__name__)
            recent = set()
        message = diagnose_missing(verdict.missing, recent, prefix, sha)
    elif status is ChecksStatus.FAILED:
        names = [r.name for r in verdict.reports if r.state is Reported.FAILED]
        message = "required check(s) failed: " + ", ".join(names)
    elif status is ChecksStatus.TIMEOUT:
        names = [r.name for r in verdict.reports if r.state is not Reported.PASSED]
        message = "required check(s) did not finish in time: " + ", ".join(names)
    else:
        message = ""
    return ChecksOutcome(status, verdict.reports, message, list(verdict.missing))


# -- both ------------------------------------------------------------------------------------


async def run_checks(
    config: ChecksConfig,
    *,
    worktree: Path,
    forge: Forge,
    repo: str,
    sha: str,
    prefix: str,
    redis: RedisClient,
    signal_channel: str,
    shadow: bool,
    environ: Mapping[str, str] | None = None,
    extra_secret_names: Iterable[str] = (),
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    sandbox: Sandbox | None = None,
    on_check: OnCheck | None = None,
) -> ChecksOutcome:
    """Run `config`'s checks on the integration commit `sha` checked out in `worktree`.

    Commands first (they are local and fail fast), then the forge's required checks, all within
    one `timeout_seconds` budget counted from now (the integration branch was just pushed).
    In shadow mode nothing was pushed, so required checks are reported as "would wait for".

    A failed check is run again on the same commit up to `checks.retry_failed` times before the
    failure stands (SPEC §13): a failed command together with the commands after it (the ones
    before it passed on this very tree, within a fresh budget); a failed required check
    re-requested through the forge, its old result ignored until a new one comes. A required
    check the forge cannot run again (a commit status, a refusal), or whose new run could not be
    told from the old one (no link), ends the retries: its failure stands. One the forge will
    re-run only later (GitHub: a job whose workflow run still runs) is asked again at each
    check signal or poll until it is accepted, or until `timeout_seconds` from the start of the
    run that failed is up: then its failure stands (`rerun_timed_out`). Checks that failed and then
    passed are the outcome's `flaky`; a flake is never a pass by itself — the outcome passes
    only when every check's latest run passed."""

    async def run(
        part: ChecksConfig, stale: Collection[CheckResult], started: float
    ) -> ChecksOutcome:
        reports: list[CheckReport] = []
        if part.commands:
            env, secrets = check_env(os.environ if environ is None else environ, extra_secret_names)
            outcome = await run_commands(
                part.commands,
                worktree,
                deadline=started + part.timeout_seconds,
                env=env,
                secrets=secrets,
                sandbox=sandbox,
                on_check=on_check,
            )
            if not outcome.passed:
                return outcome
            reports += outcome.checks
        if part.required and shadow:
            reports += [CheckReport(n, "required", Reported.WOULD_WAIT) for n in part.required]
        elif part.required:
            if on_check is not None:
                await on_check(", ".join(part.required), "required")
            async with _signals(redis, signal_channel) as signals:
                outcome = await wait_required(
                    forge,
                    repo,
                    sha,
                    part.required,
                    started=started,
                    limit_seconds=part.timeout_seconds,
                    discovery_seconds=part.discovery_timeout_seconds,
                    prefix=prefix,
                    signals=signals,
                    poll_seconds=poll_seconds,
                    stale=stale,
                )
            if not outcome.passed:
                return ChecksOutcome(
                    outcome.status, reports + outcome.checks, outcome.message, outcome.missing
                )
            reports += outcome.checks
        return ChecksOutcome(ChecksStatus.PASSED, reports)

    attempt_started = time.monotonic()
    outcome = await run(config, (), attempt_started)
    failed_once: set[str] = set()
    stale: list[CheckResult] = []
    reruns = 0
    refused: list[str] = []
    timed_out: list[str] = []
    while outcome.status is ChecksStatus.FAILED and reruns < config.retry_failed:
        failed = [c for c in outcome.checks if c.state is Reported.FAILED]
        commands_ok = [
            c for c in outcome.checks if c.kind == "command" and c.state is Reported.PASSED
        ]
        forge_failed = [c.name for c in failed if c.kind == "required"]
        if any(c.url is None for c in failed if c.kind == "required"):
            break  # a new run could not be told from the old one
        if forge_failed:
            seen = {r.name: r for r in await _failures(forge, repo, sha, forge_failed)}
            async with _signals(redis, signal_channel) as signals:
                decision = await _rerun_when_possible(
                    forge,
                    repo,
                    sha,
                    forge_failed,
                    deadline=attempt_started + config.timeout_seconds,
                    signals=signals,
                    poll_seconds=poll_seconds,
                )
            if decision is None or decision.step is not RerunStep.RUN:
                # Not asked (a forge hiccup), refused, or not re-runnable in time: it stands.
                refused, timed_out = _standing(decision)
                break
            stale += [
                seen.get(c.name) or CheckResult(c.name, CheckState.FAILURE, c.url)
                for c in failed
                if c.kind == "required"
            ]
            part = config.model_copy(update={"commands": []})
            kept = [c for c in outcome.checks if c.kind == "command"]
        else:
            part = config.model_copy(update={"commands": config.commands[len(commands_ok) :]})
            kept = commands_ok
        failed_once |= {c.name for c in failed}
        reruns += 1
        log.info(
            "checks_rerun repo=%s sha=%s run=%d failed=%s",
            repo,
            sha[:7],
            reruns + 1,
            ",".join(c.name for c in failed),
        )
        # Each run has the whole `timeout_seconds`, counted from its start.
        again_outcome = await run(part, stale, attempt_started := time.monotonic())
        outcome = replace(again_outcome, checks=kept + again_outcome.checks)
    passed_now = {c.name for c in outcome.checks if c.state is Reported.PASSED}
    flaky = sorted(failed_once & passed_now)
    return replace(
        outcome, flaky=flaky, reruns=reruns, rerun_refused=refused, rerun_timed_out=timed_out
    )


class RerunStep(StrEnum):
    """What comes after the forge answered a request to run failed checks again."""

    RUN = "run"  # all were started: wait for their new results
    WAIT = "wait"  # some only later (their workflow run still runs): ask those again
    REFUSED = "refused"  # some never: the failure stands
    TIMED_OUT = "timed_out"  # some still only later when the time ran out: the failure stands


@dataclass(frozen=True)
class RerunDecision:
    step: RerunStep
    names: list[str]  # run: the started; wait, timed_out: the not yet; refused: the refused


def decide_rerun(asked: Sequence[str], answer: RerunAnswer, *, left: float) -> RerunDecision:
    """Pure decision over the forge's answer to re-running `asked`, with `left` seconds of the
    checks' budget: a refusal for good ends the retries at once; a "not yet" is asked again
    while time is left, and stands as a failure when none is."""
    refused = [n for n in asked if n not in answer.started and n not in answer.busy]
    if refused:
        return RerunDecision(RerunStep.REFUSED, refused)
    busy = [n for n in asked if n in answer.busy]
    if busy:
        return RerunDecision(RerunStep.WAIT if left > 0 else RerunStep.TIMED_OUT, busy)
    return RerunDecision(RerunStep.RUN, [n for n in asked if n in answer.started])


@contextlib.asynccontextmanager
async def _signals(redis: RedisClient, channel: str) -> AsyncIterator[CheckSignals]:
    async with CheckSignals(redis, channel) as signals:
        yield signals


async def _failures(forge: Forge, repo: str, sha: str, names: Sequence[str]) -> list[CheckResult]:
    """The failed results of `names` on `sha` as the forge shows them right before their re-run
    is requested (to tell the re-run's result from them); none when the forge cannot say."""
    try:
        results = await forge.check_results(repo, sha)
    except Exception as exc:  # a forge hiccup: each failure is then known by its link only
        log.warning("check_results_failed repo=%s sha=%s error=%s", repo, sha, type(exc).__name__)
        return []
    return [r for r in results if r.name in names and r.state is CheckState.FAILURE]


def _standing(decision: RerunDecision | None) -> tuple[list[str], list[str]]:
    """The checks whose failure stands without a re-run, as (refused, timed out)."""
    if decision is None:
        return [], []
    refused = decision.names if decision.step is RerunStep.REFUSED else []
    return refused, decision.names if decision.step is RerunStep.TIMED_OUT else []


async def _rerun_when_possible(
    forge: Forge,
    repo: str,
    sha: str,
    names: Sequence[str],
    *,
    deadline: float,
    signals: CheckSignals,
    poll_seconds: float,
) -> RerunDecision | None:
    """Ask the forge to run the failed `names` again. Those it will re-run only later (GitHub:
    their workflow run still runs, so the other jobs are not done yet) are asked again at each
    check signal for `sha` or every `poll_seconds`, until `deadline`. None when the forge could
    not be asked (a hiccup, not a refusal)."""
    asked = list(names)
    while True:
        answer = await _rerun(forge, repo, sha, asked)
        if answer is None:
            return None
        decision = decide_rerun(asked, answer, left=deadline - time.monotonic())
        if decision.step is RerunStep.WAIT:
            log.info(
                "checks_rerun_not_yet repo=%s sha=%s checks=%s: asking again when CI moves",
                repo,
                sha[:7],
                ",".join(decision.names),
            )
            asked = decision.names
            left = max(deadline - time.monotonic(), 0.0)
            await signals.wait(sha, min(poll_seconds, left) + 0.01)
            continue
        if decision.step is not RerunStep.RUN:
            log.warning(
                "checks_rerun_%s repo=%s sha=%s checks=%s: the failure stands",
                decision.step,
                repo,
                sha[:7],
                ",".join(decision.names),
            )
        return decision


async def _rerun(forge: Forge, repo: str, sha: str, names: Sequence[str]) -> RerunAnswer | None:
    """The forge's answer (which names it runs again, which only later); None when the forge
    could not be asked (a hiccup, not a refusal)."""
    try:
        return await forge.rerun_checks(repo, sha, list(names))
    except Exception as exc:
        log.warning("checks_rerun_failed repo=%s sha=%s error=%s", repo, sha, type(exc).__name__)
        return None
