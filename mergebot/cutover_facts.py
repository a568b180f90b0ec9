"""Cutover at the edges: the shadow record read from the store, base facts asked of git and the
forge, the evidence stored for the live gate, and the mode a repo runs in.

`cutover_report` is what `mergebot cutover report` prints and what the server evaluates when it
reads its config file (at start and on SIGHUP); the evidence it stores is read by every process
(`mode_decision`), so the integrator, the status JSON, the queue API and the dashboard agree on
whether a repo asked to run live is held in shadow.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import cast

from redis.exceptions import RedisError

from mergebot.config import ConfigError, Mode, RepoConfig
from mergebot.cutover import (
    BaseFacts,
    CutoverReport,
    Evidence,
    Health,
    ModeDecision,
    build_report,
    combine_health,
    gate,
    shadow_history,
)
from mergebot.forge.base import CheckState
from mergebot.forge.base import Forge as ForgeProtocol
from mergebot.forge.errors import ForgeError
from mergebot.gate import ClearanceState
from mergebot.gatekeeper import clearance_from_json
from mergebot.git.landing import find_landing
from mergebot.git.mirror import GitError
from mergebot.runtime import Runtime
from mergebot.services import sleep_until_stopped

log = logging.getLogger("mergebot.cutover")

# mergebot's own check run on a commit says what mergebot did, not whether the commit is green.
OWN_CHECK = "mergebot"


async def base_health(forge: ForgeProtocol, repo: str, commit: str, required: list[str]) -> Health:
    """Was base green at `commit`? The `checks.required` names when set (else every check the
    forge reports there): one red → False, all reported and green → True, else unknown."""
    results = [r for r in await forge.check_results(repo, commit) if r.name != OWN_CHECK]
    if required:
        by_name = {r.name: r for r in results}
        results = [by_name[n] for n in required if n in by_name]
        complete = len(results) == len(required)
    else:
        complete = bool(results)
    failed = [r.name for r in results if r.state is CheckState.FAILURE]
    if failed:
        return Health(False, f"{', '.join(failed)} failed on {commit[:7]}")
    if complete and all(r.state is CheckState.SUCCESS for r in results):
        return Health(True, f"{', '.join(r.name for r in results)} green on {commit[:7]}")
    return Health(None)


async def clearance_health(runtime: Runtime, repo: str, base: str, commit: str) -> Health:
    """Was base green at `commit` by the clearance commands run there (`clearance.commands`
    run on every base tip mergebot did not make, results kept per sha)? Unknown when they never
    ran on it."""
    found = clearance_from_json(
        cast(str | None, await runtime.redis.hget(runtime.keys.gate(repo, base), commit))
    )
    if found is None or found.state is ClearanceState.PENDING:
        return Health(None)
    if found.state is ClearanceState.RED:
        return Health(False, f"clearance {found.check} failed on {commit[:7]}")
    return Health(True, f"clearance commands green on {commit[:7]}")


async def cutover_report(
    runtime: Runtime, repo: str, since: datetime | None = None
) -> CutoverReport:
    """The shadow decisions recorded for `repo` (since `since`) against what reached its base.

    Fetches the repo's mirror first, so git answers about the remote as it is now."""
    config = runtime.server_config.repo(repo)
    envelopes = [entry.envelope async for entry in runtime.eventlog.replay(repo=repo)]
    history = shadow_history(envelopes, since)
    mirror = runtime.mirror_for(repo)
    await asyncio.to_thread(mirror.ensure)
    await asyncio.to_thread(mirror.fetch)
    forge = runtime.forge_for(repo)
    facts: dict[tuple[str, str], BaseFacts] = {}
    for decision in history.decisions:
        landing = await asyncio.to_thread(find_landing, mirror, decision.sha, config.base_branch)
        health = Health(None)
        if landing is not None:
            health = combine_health(
                await clearance_health(runtime, repo, config.base_branch, landing.commit),
                await base_health(forge, repo, landing.commit, config.checks.required),
            )
        facts[decision.key] = BaseFacts(landing, health)
    return build_report(repo, history, facts, since)


class EvidenceStore:
    """The last evaluated shadow record per repo (one small JSON string)."""

    def __init__(self, runtime: Runtime) -> None:
        self.redis = runtime.redis
        self.keys = runtime.keys

    async def get(self, repo: str) -> Evidence | None:
        raw = cast(str | None, await self.redis.get(self.keys.cutover(repo)))
        if not raw:
            return None
        try:
            return Evidence.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            log.warning("cutover_evidence_unreadable repo=%s", repo)
            return None

    async def put(self, repo: str, evidence: Evidence) -> None:
        await self.redis.set(self.keys.cutover(repo), json.dumps(evidence.to_dict()))


async def mode_decision(runtime: Runtime, repo: str) -> tuple[ModeDecision, Evidence | None]:
    """The mode `repo` runs in now: its configured mode, held in shadow when it asks for live
    and its stored shadow record does not meet its `cutover` bar."""
    config = runtime.server_config.repo(repo)
    evidence = None
    if needs_evaluation(runtime, repo):
        evidence = await EvidenceStore(runtime).get(repo)
    return gate(config.mode, config.cutover, evidence), evidence


async def gated(runtime: Runtime, repo: str, config: RepoConfig) -> RepoConfig:
    """`repo`'s effective `config` with the mode the cutover gate allows it now."""
    decision, _ = await mode_decision(runtime, repo)
    if decision.mode is config.mode:
        return config
    return config.model_copy(update={"mode": decision.mode})


async def evaluate(runtime: Runtime, repo: str) -> ModeDecision:
    """Judge `repo`'s shadow record now, store it for every process, and say what follows: a
    repo held in shadow is logged at WARNING with the numbers and the bar."""
    report = await cutover_report(runtime, repo)
    evidence = report.evidence(datetime.now(UTC))
    await EvidenceStore(runtime).put(repo, evidence)
    config = runtime.server_config.repo(repo)
    decision = gate(config.mode, config.cutover, evidence)
    parity = "none" if evidence.parity is None else f"{evidence.parity:.3f}"
    if decision.held_back:
        log.warning(
            "cutover_held_in_shadow repo=%s parity=%s decisions=%d min_parity=%s "
            "min_decisions=%s reason=%r",
            repo, parity, evidence.decisions, config.cutover.min_parity,
            config.cutover.min_decisions, decision.reason,
        )  # fmt: skip
    else:
        log.info(
            "cutover_evaluated repo=%s mode=%s parity=%s decisions=%d",
            repo, decision.mode, parity, evidence.decisions,
        )  # fmt: skip
    return decision


async def _evaluate_all(runtime: Runtime) -> None:
    for repo in sorted(runtime.server_config.repos):
        if not needs_evaluation(runtime, repo):
            continue
        try:
            await evaluate(runtime, repo)
        except (GitError, ForgeError, ConfigError) as exc:
            # The stored record (if any) stays; the repo stays where that record puts it.
            log.warning("cutover_evaluation_failed repo=%s error=%s", repo, exc)


async def cutover_service(runtime: Runtime, stop: asyncio.Event) -> None:
    """Judge the shadow record of every repo asked to run live behind a cutover bar: at start
    and each time the server file is read again (SIGHUP), so switching a repo to live is an
    operator's act that takes effect once its record is judged good enough."""
    while not stop.is_set():
        runtime.config_reloaded.clear()
        try:
            await _evaluate_all(runtime)
        except (RedisError, OSError) as exc:
            log.warning("cutover_redis_error error=%s retry_in=5s", type(exc).__name__)
            await sleep_until_stopped(stop, 5.0)
            continue
        except Exception:
            log.exception("cutover_evaluation_crashed")
        reloaded = asyncio.ensure_future(runtime.config_reloaded.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reloaded, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reloaded.cancel()
            stopped.cancel()


def needs_evaluation(runtime: Runtime, repo: str) -> bool:
    """A repo asks to run live behind a cutover bar that the operator has not waived."""
    config = runtime.server_config.repo(repo)
    return config.mode is Mode.LIVE and config.cutover.has_bar and not config.cutover.accepted
