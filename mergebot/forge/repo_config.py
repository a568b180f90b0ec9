"""A repo's effective configuration: the server file's table overlaid with the repo's own
`.github/mergebot.toml` from its base branch — all of it or nothing.

The integrator calls `effective_repo_config` before each candidate. A file that does not parse or
validate raises `ConfigError` (every problem, with file, key and reason): the integrator then
integrates nothing for the repo — never with a half-read config — and `report_config_error`
tells the people on the pull request what is wrong.

The processor decides readiness with the same effective config (`EffectiveConfigs`): the file
is read at the base branch's sha once per sha, not on every event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mergebot.config import ConfigError, RepoConfig, ServerConfig, apply_repo_file
from mergebot.forge.base import CommentKind, Forge, ReportState
from mergebot.forge.errors import ForgeError
from mergebot.forge.render import render_comment, render_report

log = logging.getLogger("mergebot.repo_config")

REPO_CONFIG_PATH = ".github/mergebot.toml"


async def effective_repo_config(
    forge: Forge, server_config: ServerConfig, repo: str, *, ref: str | None = None
) -> RepoConfig:
    """Raises ConfigError when the repo's file is invalid (the server's part was validated at
    start-up); a missing file means the server's configuration applies unchanged. The file is
    read at `ref` (a sha of the base branch) when given, else at the base branch."""
    base = server_config.repo(repo)
    text = await forge.read_file(repo, ref or base.base_branch, REPO_CONFIG_PATH)
    if text is None:
        return base
    return apply_repo_file(base, text, REPO_CONFIG_PATH)


def operator_pinned(config: RepoConfig, server: RepoConfig, base: str) -> RepoConfig:
    """Who may write what is the operator's decision alone (SPEC §9): the mode stays the
    server's, and so does the base branch — the queue and lease of (repo, base) are keyed by
    it, and the repo's file is itself read from that branch."""
    return config.model_copy(update={"mode": server.mode, "base_branch": base})


class EffectiveConfigs:
    """The effective config of each repo for readiness, read once per base-branch sha.

    Unknown base sha (git could not tell) → the server's config. An invalid file → the server's
    config, logged (the integrator refuses to integrate with it and tells the pull request), and
    remembered for that sha like a valid one. A forge that cannot be reached → the last config
    read for the repo (else the server's), asked again after `retry_seconds` (a forge that is
    down must not be asked, with its retries, on every batch).
    """

    def __init__(
        self,
        server_config: ServerConfig,
        forge_for: Callable[[str], Forge],
        *,
        retry_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server_config = server_config
        self.forge_for = forge_for
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._by_repo: dict[str, tuple[str, RepoConfig]] = {}
        self._failed: dict[str, tuple[str, float]] = {}

    async def get(self, repo: str, base_sha: str | None) -> RepoConfig:
        server = self.server_config.repo(repo)
        held = self._by_repo.get(repo)
        if base_sha is None:
            return server
        if held is not None and held[0] == base_sha:
            return held[1]
        failed = self._failed.get(repo)
        if failed is not None and failed[0] == base_sha and self.clock() < failed[1]:
            return held[1] if held is not None else server
        try:
            found = await effective_repo_config(
                self.forge_for(repo), self.server_config, repo, ref=base_sha
            )
            config = operator_pinned(found, server, server.base_branch)
        except ConfigError as exc:
            log.warning(
                "repo_config_invalid repo=%s base_sha=%s problems=%d: readiness uses the "
                "server's config", repo, base_sha, len(exc.problems),
            )  # fmt: skip
            config = server
        except (ForgeError, LookupError, OSError) as exc:
            log.warning("repo_config_unreadable repo=%s base_sha=%s error=%s", repo, base_sha, exc)
            self._failed[repo] = (base_sha, self.clock() + self.retry_seconds)
            return held[1] if held is not None else server
        self._by_repo[repo] = (base_sha, config)
        self._failed.pop(repo, None)
        return config


async def report_config_error(
    forge: Forge,
    *,
    repo: str,
    slug: str,
    sha: str,
    base: str,
    error: ConfigError,
    templates_dir: str | None = None,
) -> None:
    """Show the problems on the candidate: a failing `mergebot` check and one config comment."""
    problems = [{"key": p.key, "reason": p.reason} for p in error.problems]
    await forge.report(
        render_report(
            repo,
            slug,
            sha,
            ReportState.BLOCKED,
            templates_dir=templates_dir,
            base=base,
            followup=None,
            file=REPO_CONFIG_PATH,
            problems=problems,
        )
    )
    body = render_comment(
        CommentKind.CONFIG_ERROR,
        templates_dir=templates_dir,
        file=REPO_CONFIG_PATH,
        problems=problems,
        base=base,
    )
    await forge.comment(repo, slug, CommentKind.CONFIG_ERROR, body)
