"""Template contexts: plain data for the notification and follow-up templates (pure).

Long lists are cut here, per output, so every template gets the same "first N and how many more"
shape: a chat message shows a handful of conflicting files, a todo file shows many more; a template
never has to count. Untrusted text is passed as is: escaping is the template's job, per format.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from mergebot.config import Forge, Mode, NotifyEvent, ServerConfig, Settings
from mergebot.conversation_record import Conversation
from mergebot.events import Envelope, EventName
from mergebot.followups import BlockInfo, Followup, block_info
from mergebot.notify.notification import Notification
from mergebot.render import one_line, reason_text, tail, take

_PR_SLUG_RE = re.compile(r"^pr-(\d+)$")


class Format(StrEnum):
    """The output formats of notification templates (one directory each under notify/)."""

    SLACK = "slack"
    DISCORD = "discord"
    TELEGRAM = "telegram"
    PLAIN = "plain"
    MARKDOWN = "markdown"


_SUFFIX = {
    Format.SLACK: "json.j2",
    Format.DISCORD: "json.j2",
    Format.TELEGRAM: "md2.j2",
    Format.PLAIN: "txt.j2",
    Format.MARKDOWN: "md.j2",
}
JSON_FORMATS = frozenset({Format.SLACK, Format.DISCORD})


FREEZE_KINDS = frozenset({NotifyEvent.FROZEN, NotifyEvent.UNFROZEN})


def template_name(fmt: Format, kind: NotifyEvent) -> str:
    return f"notify/{fmt}/{kind}.{_SUFFIX[fmt]}"


@dataclass(frozen=True)
class Limits:
    files: int
    checks: int
    output_lines: int
    output_chars: int
    message_chars: int
    # All output tails of one text together: many failing checks with long logs must not push
    # the rest (what to do, how to resume) past a platform's limit (Telegram 4,096, GitHub 65,536).
    output_budget: int


CHAT = Limits(
    files=10, checks=3, output_lines=8, output_chars=600, message_chars=400, output_budget=1200
)
# A chat message that does not fit its platform with CHAT's lists is rendered again with these
# (Telegram refuses MarkdownV2 over 4,096 characters; escaping can double hostile names).
TIGHT = Limits(
    files=3, checks=1, output_lines=4, output_chars=300, message_chars=200, output_budget=300
)
# The platform's hard limit of a rendered message body, per format that has one.
MESSAGE_LIMIT = {Format.TELEGRAM: 4096, Format.DISCORD: 4096}


def fits(fmt: Format, body: Any) -> bool:
    """Whether a rendered message is within its platform's limit (a Discord embed's
    description, a Telegram text)."""
    limit = MESSAGE_LIMIT.get(fmt)
    if limit is None:
        return True
    if isinstance(body, dict):
        embeds = body.get("embeds") or [{}]
        return len(str(embeds[0].get("description") or "")) <= limit
    return len(str(body)) <= limit


DOCUMENT = Limits(
    files=100, checks=20, output_lines=60, output_chars=6000, message_chars=4000,
    output_budget=36_000,
)  # fmt: skip


@dataclass(frozen=True)
class Links:
    """Where people look: mergebot's dashboard, and the forge's pull request if there is one."""

    server_url: str
    forge_web_url: str | None = None

    def candidate(self, repo: str, slug: str) -> str:
        return f"{self.server_url.rstrip('/')}/repos/{repo}#{slug}"

    def followup(self, repo: str, followup_id: str) -> str:
        """The follow-up's own page on the dashboard (the whole todo, never cut)."""
        return f"{self.server_url.rstrip('/')}/repos/{repo}/followups/{quote(followup_id)}"

    def pull_request(self, repo: str, slug: str) -> str | None:
        match = _PR_SLUG_RE.match(slug)
        if not match or not self.forge_web_url:
            return None
        return f"{self.forge_web_url.rstrip('/')}/{repo}/pull/{match.group(1)}"


def github_web_url(api_url: str) -> str:
    """https://api.github.com → https://github.com; GitHub Enterprise's /api/v3 is dropped."""
    url = api_url.rstrip("/")
    if url == "https://api.github.com":
        return "https://github.com"
    return url.removesuffix("/api/v3")


def links_for(settings: Settings, config: ServerConfig, repo: str) -> Links:
    """The links of `repo`'s texts: mergebot's own pages, and GitHub's for a GitHub repo."""
    forge_web = None
    if config.managed(repo) and config.repo(repo).forge is Forge.GITHUB:
        forge_web = github_web_url(settings.github_api_url)
    return Links(settings.server_url(), forge_web)


@dataclass(frozen=True)
class LandedBy:
    """A candidate mergebot landed: base moved to `main_after` when it did."""

    slug: str
    sha: str
    main_after: str


def landed_by(envelope: Envelope) -> LandedBy | None:
    """The landing an `integration_completed` records (None for any other event): a follow-up
    of a conflict on the base it made names that candidate as what it conflicted with."""
    if envelope.name is not EventName.INTEGRATION_COMPLETED:
        return None
    p = envelope.payload
    values = (p.get("slug"), p.get("sha"), p.get("main_after"))
    if not all(isinstance(v, str) and v for v in values):
        return None
    slug, sha, main_after = (str(v) for v in values)
    return LandedBy(slug, sha, main_after)


def when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _block(info: BlockInfo, limits: Limits) -> dict[str, Any]:
    files, files_more = take(info.files, limits.files)
    checks, checks_more = take(info.checks, limits.checks)
    missing, missing_more = take(info.missing, limits.checks)
    message = info.message
    if len(message) > limits.message_chars:
        message = message[: limits.message_chars - 1] + "…"
    outputs = sum(1 for c in checks if c.output) + (1 if info.output else 0)
    chars = min(limits.output_chars, limits.output_budget // max(outputs, 1))
    return {
        "files": files,
        "files_more": files_more,
        "files_total": len(info.files),
        "checks": [
            {
                "name": c.name,
                "state": c.state,
                "url": c.url,
                "summary": c.summary,
                # A check mergebot ran itself: its name is the command line to run again.
                "command": c.name if c.kind == "command" else None,
                "exit_code": c.exit_code,
                "output_tail": tail(c.output, limits.output_lines, chars) if c.output else "",
                "flaky_recent": c.flaky_recent,
            }
            for c in checks
        ],
        "checks_more": checks_more,
        "missing": missing,
        "missing_more": missing_more,
        "message": message,
        "diagnosis": info.diagnosis,
        "output_tail": tail(info.output, limits.output_lines, chars) if info.output else "",
        "base_sha": info.base_sha or None,
        "integration_sha": info.integration_sha or None,
        "integration_branch": info.integration_branch or None,
        "bisection_batch": info.bisection_batch,
        "reruns": info.reruns,
        "rerun_refused": info.rerun_refused,
        "rerun_timed_out": info.rerun_timed_out,
    }


def _steps(followup: Followup, block: dict[str, Any]) -> dict[str, list[str]]:
    """The shell lines of a todo, names quoted: bring the branch up to date with base (a
    conflict), rebuild the checked tree and rerun the failed commands (a failed check), push a
    fix. Every template prints the same lines."""
    branch, base = shlex.quote(followup.branch), shlex.quote(followup.base or "main")
    merged_onto = shlex.quote(block["base_sha"] or f"origin/{followup.base or 'main'}")
    commands = [one_line(c["command"]) for c in block["checks"] if c["command"]]
    return {
        "merge": [
            "git fetch origin",
            f"git checkout {branch}",
            f"git merge origin/{base}    # or: git rebase origin/{base}",
            "# resolve the conflicts, run the tests, then",
            "git commit",
            f"git push origin {branch}",
        ],
        "reproduce": [
            "git fetch origin",
            f"git checkout --detach {followup.sha}",
            f"git merge --no-edit {merged_onto}",
            *commands,
        ],
        "push": [
            f"git checkout {branch}",
            "# fix, run the tests, commit",
            f"git push origin {branch}",
        ],
    }


def _resume(repo: str, slug: str, pr_url: str | None) -> dict[str, Any]:
    return {
        "comment": "/mergebot resume" if pr_url else None,
        "cli": f"mergebot resume {repo} {slug}",
    }


def notification_context(
    n: Notification,
    previous: Conversation | None,
    links: Links,
    limits: Limits = CHAT,
    *,
    followup: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a notification template may use. `previous` is what the sink last said about
    the slug (its message is edited, or the new message names it)."""
    pr_url = links.pull_request(n.repo, n.slug)
    return {
        "kind": str(n.kind),
        "repo": n.repo,
        "slug": n.slug,
        "branch": n.branch,
        "sha": n.sha,
        "sha7": n.sha[:7],
        "base": n.base or "main",
        "at": when(n.at),
        "at_iso": n.at.astimezone(UTC).isoformat(),
        "cause": n.cause,
        "reasons": list(n.reasons),
        "previous": None
        if previous is None
        else {
            "kind": str(previous.kind),
            "sha": previous.sha,
            "sha7": previous.sha[:7],
            "at": when(previous.at),
            "same_sha": previous.sha == n.sha,
        },
        "reason": n.reason,
        "reason_text": reason_text(n.reason),
        "block": _block(block_info(n.details), limits) if n.kind is NotifyEvent.BLOCKED else None,
        "followup_id": n.followup_id,
        "followup_url": links.followup(n.repo, n.followup_id) if n.followup_id else None,
        "candidate_url": links.candidate(n.repo, n.slug),
        "pr_url": pr_url,
        "main_before": n.main_before,
        "main_after": n.main_after,
        "main_after7": (n.main_after or "")[:7],
        "shadow": n.mode is Mode.SHADOW,
        "checks_passed": [
            str(c.get("name")) for c in n.checks if isinstance(c.get("name"), str | int)
        ],
        "resume": _resume(n.repo, n.slug, pr_url),
        "car": n.car,
        "stacked_on": n.stacked_on,
        "batch": n.batch,
        # The follow-up's own context (followup_context), for the PR comment formats.
        "followup": followup,
        # A freeze of the base's queue: by, until, kind ("clearance": a red base), check, detail.
        "freeze": dict(n.details) if n.kind in FREEZE_KINDS else None,
    }


def followup_context(
    followup: Followup,
    links: Links,
    *,
    previous: Followup | None = None,
    limits: Limits = DOCUMENT,
    landed_by: LandedBy | None = None,
) -> dict[str, Any]:
    """Everything the follow-up todo template may use (PR comment, check run, exported file,
    dashboard page). `landed_by` is the candidate whose landing made the base commit the
    blocked one was merged onto, when mergebot made it (what a conflict was with)."""
    pr_url = links.pull_request(followup.repo, followup.slug)
    previous_id = followup.previous_id
    block = _block(followup.info(), limits)
    return {
        "id": followup.id,
        "repo": followup.repo,
        "slug": followup.slug,
        "branch": followup.branch,
        "sha": followup.sha,
        "sha7": followup.sha[:7],
        "base": followup.base or "main",
        "reason": followup.reason,
        "reason_text": followup.reason_text,
        "blocked_at": when(followup.blocked_at),
        "status": str(followup.status),
        "claimed_by": followup.claimed_by,
        "claimed_at": when(followup.claimed_at) if followup.claimed_at else None,
        "resolved_by": followup.resolved_by,
        "resolved_at": when(followup.resolved_at) if followup.resolved_at else None,
        "resolution": followup.resolution,
        "block": block,
        "steps": _steps(followup, block),
        "candidate_url": links.candidate(followup.repo, followup.slug),
        "followup_url": links.followup(followup.repo, followup.id),
        "pr_url": pr_url,
        "previous": None
        if previous_id is None
        else {
            "id": previous_id,
            "url": links.followup(followup.repo, previous_id),
            "reason_text": previous.reason_text if previous else None,
            "sha7": previous.sha[:7] if previous else None,
        },
        "resume": _resume(followup.repo, followup.slug, pr_url),
        "landed_by": None
        if landed_by is None
        else {
            "slug": landed_by.slug,
            "sha": landed_by.sha,
            "url": links.candidate(followup.repo, landed_by.slug),
        },
    }
