"""The forge interface the core and the integrator talk to (GitHub, or a plain git remote).

It is a Protocol of plain data in and out: no PyGithub object crosses it, so the integrator can be
tested against a plain git remote and a fake, and the GitHub adapter can be swapped.
Moving the base branch is *not* here: it is a git push with a compare-and-swap lease, done by the
workspace, which works the same for every remote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Permission(StrEnum):
    ADMIN = "admin"
    MAINTAIN = "maintain"
    WRITE = "write"
    TRIAGE = "triage"
    READ = "read"
    NONE = "none"

    @property
    def can_command(self) -> bool:
        """SPEC §7: write, maintain or admin may drive mergebot from a comment."""
        return self in (Permission.ADMIN, Permission.MAINTAIN, Permission.WRITE)

    @property
    def can_freeze(self) -> bool:
        """Freezing stops the whole queue, so it takes maintain or admin (as a branch
        protection change would), not write."""
        return self in (Permission.ADMIN, Permission.MAINTAIN)


class CheckState(StrEnum):
    PENDING = "pending"  # created, not finished
    SUCCESS = "success"
    FAILURE = "failure"  # failure, error, cancelled, timed_out, action_required…


@dataclass(frozen=True)
class CheckResult:
    """One CI status or check run on a commit, as the forge reports it."""

    name: str
    state: CheckState
    url: str | None = None
    summary: str = ""
    started_at: datetime | None = None


@dataclass(frozen=True)
class RerunAnswer:
    """The forge's answer to running failed checks again. `started`: run again. `busy`: not
    now, ask again later (GitHub re-runs an Actions job only once its whole workflow run has
    finished). Any other name asked is refused for good, or has no re-run (a commit status)."""

    started: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)


class ReportState(StrEnum):
    """What mergebot shows on a pull request (a check run, or a commit status)."""

    QUEUED = "queued"
    INTEGRATING = "integrating"
    BLOCKED = "blocked"
    MERGED = "merged"
    WOULD_MERGE = "would_merge"  # shadow mode: passed, and would have been merged
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Report:
    repo: str
    slug: str
    sha: str  # the candidate's head sha the report is attached to
    state: ReportState
    title: str
    summary_markdown: str
    details_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # The check run's `output.text`, below the summary: a blocked candidate's follow-up todo.
    text_markdown: str | None = None


class CommentKind(StrEnum):
    """A PR gets at most one comment per kind, edited in place (hidden marker in the body)."""

    BLOCKED = "blocked"
    REFUSED = "refused"
    CONFIG_ERROR = "config_error"
    STATUS = "status"
    HELP = "help"
    LANDED = "landed"


class Forge(Protocol):
    """What mergebot needs from a forge. Every method may block on the network: adapters run
    their blocking clients in threads and present coroutines here."""

    async def permission(self, repo: str, user: str) -> Permission:
        """The user's permission on the repo (cached briefly by the adapter)."""
        ...

    async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
        """Every status and check run reported on `sha` (latest per name)."""
        ...

    async def rerun_checks(self, repo: str, sha: str, names: list[str]) -> RerunAnswer:
        """Ask CI to run the named failed checks of `sha` again (`checks.retry_failed`): which
        ones it re-ran, and which ones it will only re-run later (a commit status cannot be)."""
        ...

    async def recent_check_names(self, repo: str, branch_prefix: str, days: int) -> set[str]:
        """Names of checks reported on any commit of branches under `branch_prefix` lately;
        used to explain a required check that never appeared."""
        ...

    async def read_file(self, repo: str, ref: str, path: str) -> str | None:
        """A file's text at `ref`, or None when it does not exist."""
        ...

    async def report(self, report: Report) -> None:
        """Show mergebot's state of a candidate on the forge (check run / commit status)."""
        ...

    async def comment(self, repo: str, slug: str, kind: CommentKind, body: str) -> None:
        """Create or edit the one comment of `kind` on the candidate's pull request."""
        ...

    async def landed(self, repo: str, slug: str, sha: str, merged_sha: str) -> None:
        """The candidate is on base: close or mark the pull request as the merge method needs."""
        ...


@dataclass(frozen=True)
class PullSnapshot:
    """An open pull request and its reviews, as the forge's REST API returns them (GitHub's
    bodies: reconciliation dresses them as the webhook payloads GitHub would have sent)."""

    pull: dict[str, Any]
    reviews: tuple[dict[str, Any], ...]


@runtime_checkable
class PullLister(Protocol):
    """What reconciliation needs from a forge beyond `Forge`: its open pull requests. The GitHub
    adapter has it; a plain git remote has no pull requests."""

    async def open_pulls(self, repo: str) -> list[PullSnapshot]:
        """Every open pull request of `repo` with its reviews, oldest first."""
        ...

    async def pull(self, repo: str, number: int) -> dict[str, Any] | None:
        """One pull request's body (None when it does not exist)."""
        ...
