"""A repo's effective configuration: the server file's table overlaid with the repo's own
`.github/mergebot.toml` from its base branch — all of it or nothing.

The integrator calls `effective_repo_config` before each candidate. A file that does not parse or
validate raises `ConfigError` (every problem, with file, key and reason): the integrator then
integrates nothing for the repo — never with a half-read config — and `report_config_error`
tells the people on the pull request what is wrong.
"""

from __future__ import annotations

from mergebot.config import ConfigError, RepoConfig, ServerConfig, apply_repo_file
from mergebot.forge.base import CommentKind, Forge, ReportState
from mergebot.forge.render import render_comment, render_report

REPO_CONFIG_PATH = ".github/mergebot.toml"


async def effective_repo_config(forge: Forge, server_config: ServerConfig, repo: str) -> RepoConfig:
    """Raises ConfigError when the repo's file is invalid (the server's part was validated at
    start-up); a missing file means the server's configuration applies unchanged."""
    base = server_config.repo(repo)
    text = await forge.read_file(repo, base.base_branch, REPO_CONFIG_PATH)
    if text is None:
        return base
    return apply_repo_file(base, text, REPO_CONFIG_PATH)


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
    message = "\n".join(f"- `{p['key']}`: {p['reason']}" for p in problems)
    await forge.report(
        render_report(
            repo,
            slug,
            sha,
            ReportState.BLOCKED,
            templates_dir=templates_dir,
            base=base,
            reason="config_error",
            details={"message": f"`{REPO_CONFIG_PATH}` is invalid:\n\n{message}"},
            followup_id="none",
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
