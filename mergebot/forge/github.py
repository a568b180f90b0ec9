"""The GitHub forge adapter: `mergebot.forge.base.Forge` on top of PyGithub.

PyGithub objects never leave this module: every method turns them into our plain types.
Every PyGithub call blocks, so each runs in a worker thread (`asyncio.to_thread`), one at a time
per adapter (GitHub asks integrations not to send concurrent requests), and every call goes
through `_call`, where `mergebot.forge.retrying` decides whether to try again:
PyGithub's own urllib3 retry is switched off (`retry=0`) because it re-sends POSTs on a 5xx and
sleeps inside the thread on rate limits. Each `_call` makes either only reads (safe to repeat) or
exactly one write, so the decision can be made per request kind.

Authentication is a token (`MERGEBOT_GITHUB_TOKEN`) or a GitHub App (`MERGEBOT_GITHUB_APP_ID` +
`MERGEBOT_GITHUB_PRIVATE_KEY`): the installation of each repo is looked up once, and PyGithub mints
its installation token and renews it shortly before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from github import Auth, Github, GithubException, GithubIntegration, UnknownObjectException
from github.CheckRun import CheckRun
from github.Repository import Repository

from mergebot.config import Settings
from mergebot.forge.base import (
    CheckResult,
    CheckState,
    CommentKind,
    Permission,
    PullSnapshot,
    Report,
    ReportState,
    RerunAnswer,
)
from mergebot.forge.errors import ForgeError, RateLimitedError
from mergebot.forge.render import MARKER_ROOM, MAX_COMMENT, fit, render_comment
from mergebot.forge.retrying import Retry, RetryPolicy, decide
from mergebot.ids import pr_number

log = logging.getLogger("mergebot.forge.github")

T = TypeVar("T")

CHECK_NAME = "mergebot"
DEFAULT_TIMEOUT_SECONDS = 15
_MARKER = "<!-- mergebot:{kind} -->"
_MAX_DESCRIPTION = 140  # GitHub's limit for a commit status description

# Check run (status, conclusion) and commit status state for each report state.
_CHECK_RUN: dict[ReportState, tuple[str, str | None]] = {
    ReportState.QUEUED: ("queued", None),
    ReportState.INTEGRATING: ("in_progress", None),
    ReportState.BLOCKED: ("completed", "failure"),
    ReportState.MERGED: ("completed", "success"),
    ReportState.WOULD_MERGE: ("completed", "neutral"),  # nothing was merged
    ReportState.SUPERSEDED: ("completed", "neutral"),
    ReportState.CANCELLED: ("completed", "cancelled"),
}
_COMMIT_STATUS: dict[ReportState, str] = {
    ReportState.QUEUED: "pending",
    ReportState.INTEGRATING: "pending",
    ReportState.BLOCKED: "failure",
    ReportState.MERGED: "success",
    ReportState.WOULD_MERGE: "success",  # a commit status has no neutral; the title says "would"
    ReportState.SUPERSEDED: "error",
    ReportState.CANCELLED: "error",
}
_PASSING_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
# The app of GitHub Actions' check runs: its jobs are re-run through the Actions API.
ACTIONS_APP = "github-actions"
# GitHub's answers to a re-run it will not do: not the app's run or not re-runnable now (403),
# no such run or job (404), not re-requestable in its state (422).
_REFUSED_RERUN = frozenset({403, 404, 422})
# GitHub's 403 for an Actions job whose workflow run has not finished: "The workflow run
# containing this job is already running" (a whole run: "This workflow is already running").
_STILL_RUNNING = re.compile(r"\b(?:workflow|job)\b.*\balready running\b", re.IGNORECASE)


class RerunRefusal(StrEnum):
    """How a refused re-run is taken."""

    NOT_YET = "not_yet"  # the job's workflow run still runs: GitHub accepts once it finished
    REFUSED = "refused"  # for good: not ours to re-run, gone, too old, re-run too often…


def rerun_refusal(status: int | None, message: str) -> RerunRefusal | None:
    """GitHub's answer `status` with `message` to a re-run request, as a refusal; None when it
    is no refusal (an error the caller raises). Only the 403 saying the workflow run is already
    running is "not yet": a 403 for a missing permission, a 404 or a 422 will not change."""
    if status not in _REFUSED_RERUN:
        return None
    if status == 403 and _STILL_RUNNING.search(message):
        return RerunRefusal.NOT_YET
    return RerunRefusal.REFUSED


def marker(kind: CommentKind) -> str:
    return _MARKER.format(kind=kind.value)


@dataclass(frozen=True)
class GitHubCredentials:
    """Either a token, or an App id with its private key (PEM)."""

    token: str | None = None
    app_id: int | None = None
    private_key: str | None = None

    def __post_init__(self) -> None:
        if self.token is None and (self.app_id is None or self.private_key is None):
            raise ForgeError(
                "GitHub credentials missing: set MERGEBOT_GITHUB_TOKEN, or MERGEBOT_GITHUB_APP_ID "
                "and MERGEBOT_GITHUB_PRIVATE_KEY"
            )

    def __repr__(self) -> str:  # never print a secret
        kind = "token" if self.token else f"app {self.app_id}"
        return f"GitHubCredentials({kind})"


def _check_state(status: str | None, conclusion: str | None) -> CheckState:
    if status != "completed":
        return CheckState.PENDING
    return CheckState.SUCCESS if conclusion in _PASSING_CONCLUSIONS else CheckState.FAILURE


def _status_state(state: str) -> CheckState:
    if state == "success":
        return CheckState.SUCCESS
    if state == "pending":
        return CheckState.PENDING
    return CheckState.FAILURE


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class GitHubForge:
    """`Forge` for github.com and GitHub Enterprise (`api_url`)."""

    def __init__(
        self,
        credentials: GitHubCredentials,
        *,
        api_url: str = "https://api.github.com",
        policy: RetryPolicy | None = None,
        seconds_between_writes: float | None = 1.0,
        permission_ttl: float = 60.0,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.api_url = api_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.permission_ttl = permission_ttl
        self._sleep = sleep
        self._clock = clock
        self._github_kwargs: dict[str, Any] = {
            "base_url": self.api_url,
            "timeout": timeout,
            "retry": 0,
            # Reads are not spaced (we send few, one at a time); writes are spaced by a second,
            # as GitHub's secondary rate limit guidance asks of content-creating requests.
            "seconds_between_requests": None,
            "seconds_between_writes": seconds_between_writes,
            "lazy": True,
            "user_agent": "mergebot",
        }
        self._serial = asyncio.Lock()
        self._clients: dict[int | None, Github] = {}
        self._installation_auths: dict[int, Auth.AppInstallationAuth] = {}
        self._installations: dict[str, int] = {}
        self._permissions: dict[tuple[str, str], tuple[Permission, float]] = {}
        self._own_login: str | None = None
        self._no_check_runs: set[str] = set()
        self._check_runs: dict[tuple[str, str], tuple[int, str]] = {}
        self._comments: dict[tuple[str, int, CommentKind], int] = {}
        self._file_etags: dict[tuple[str, str, str], tuple[str, str | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> GitHubForge:
        token = settings.github_token.get_secret_value() if settings.github_token else None
        key = settings.github_private_key
        credentials = GitHubCredentials(
            token=token,
            app_id=settings.github_app_id,
            private_key=key.get_secret_value() if key else None,
        )
        kwargs.setdefault("seconds_between_writes", settings.github_seconds_between_writes or None)
        return cls(credentials, api_url=settings.github_api_url, **kwargs)

    # -- plumbing ------------------------------------------------------------------------------
    async def _call(self, what: str, fn: Callable[[], T], *, write: bool = False) -> T:
        """Run one blocking PyGithub step in a thread; retry as `retrying.decide` says."""
        attempt = 0
        rate_limit_retries = 0
        while True:
            attempt += 1
            try:
                async with self._serial:
                    return await asyncio.to_thread(fn)
            except ForgeError:
                raise
            except Exception as exc:
                decision = decide(
                    self.policy,
                    exc,
                    what=what,
                    write=write,
                    attempt=attempt,
                    rate_limit_retries=rate_limit_retries,
                    now=self._clock(),
                )
                if not isinstance(decision, Retry):
                    raise decision from None
                if decision.rate_limited:
                    rate_limit_retries += 1
                log.warning(
                    "github_call_retrying what=%s reason=%s delay=%.1fs attempt=%d",
                    what,
                    decision.reason,
                    decision.delay,
                    attempt,
                )
                await self._sleep(decision.delay)

    def _app_auth(self) -> Auth.AppAuth:
        assert self.credentials.app_id is not None
        assert self.credentials.private_key is not None
        return Auth.AppAuth(self.credentials.app_id, self.credentials.private_key)

    def _client(self, repo: str) -> Github:
        """The PyGithub client for `repo` (blocking: may look up the App installation)."""
        if self.credentials.token is not None:
            if None not in self._clients:
                self._clients[None] = Github(
                    auth=Auth.Token(self.credentials.token), **self._github_kwargs
                )
            return self._clients[None]
        installation = self._installations.get(repo)
        if installation is None:
            integration = GithubIntegration(auth=self._app_auth(), **self._integration_kwargs())
            owner, name = repo.split("/", 1)
            installation = integration.get_repo_installation(owner, name).id
            self._installations[repo] = installation
        if installation not in self._clients:
            auth = self._app_auth().get_installation_auth(installation)
            self._clients[installation] = Github(auth=auth, **self._github_kwargs)
            self._installation_auths[installation] = auth
        return self._clients[installation]

    def git_token(self, repo: str) -> str:
        """The token git authenticates with for `repo` (user `x-access-token`): the configured
        token, or the App installation's current token — the same one the API calls use, minted
        on first use and renewed by PyGithub shortly before it expires, so ask for it at every git
        call and never keep it. Blocking (may look up the installation or mint a token): git
        calls run in threads."""
        if self.credentials.token is not None:
            return self.credentials.token
        self._client(repo)
        return self._installation_auths[self._installations[repo]].token

    def _integration_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self._github_kwargs.items() if k != "lazy"}

    def _repo(self, repo: str) -> Repository:
        return self._client(repo).get_repo(repo)

    async def _prepare(self, repo: str) -> Repository:
        """Resolve the client (a read: may look up the installation) before a write."""
        return await self._call(f"installation of {repo}", lambda: self._repo(repo))

    # -- Forge: reads ----------------------------------------------------------------------------
    async def permission(self, repo: str, user: str) -> Permission:
        key = (repo, user.lower())
        cached = self._permissions.get(key)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]

        def fetch() -> Permission:
            try:
                value = self._repo(repo).get_collaborator_permission(user)
            except GithubException as exc:
                if exc.status == 404:  # no such user
                    return Permission.NONE
                raise
            try:
                return Permission(value)
            except ValueError:
                return Permission.NONE

        permission = await self._call(f"permission of {user} on {repo}", fetch)
        self._permissions[key] = (permission, now + self.permission_ttl)
        return permission

    async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
        def fetch() -> list[CheckResult]:
            commit = self._repo(repo).get_commit(sha)
            found: dict[str, tuple[datetime | None, CheckResult]] = {}
            for status in commit.get_combined_status().statuses:
                when = _aware(status.updated_at or status.created_at)
                result = CheckResult(
                    name=status.context,
                    state=_status_state(status.state),
                    url=status.target_url,
                    summary=status.description or "",
                    started_at=_aware(status.created_at),
                )
                found[status.context] = (when, result)
            runs: dict[str, CheckRun] = {}
            for run in commit.get_check_runs(filter="latest"):
                current = runs.get(run.name)
                if current is None or run.id > current.id:
                    runs[run.name] = run
            for run in runs.values():
                when = _aware(run.completed_at or run.started_at)
                output = run.output
                summary = (output.title or "") if output is not None else ""
                result = CheckResult(
                    name=run.name,
                    state=_check_state(run.status, run.conclusion),
                    url=run.html_url or run.details_url,
                    summary=summary,
                    started_at=_aware(run.started_at),
                )
                previous = found.get(run.name)
                if previous is None or (when or datetime.min.replace(tzinfo=UTC)) >= (
                    previous[0] or datetime.min.replace(tzinfo=UTC)
                ):
                    found[run.name] = (when, result)
            return [result for _, result in found.values()]

        return await self._call(f"checks of {repo}@{sha[:7]}", fetch)

    async def rerun_checks(self, repo: str, sha: str, names: list[str]) -> RerunAnswer:
        """Run the latest check run of each name on `sha` again. GitHub lets an app re-request
        only its own check runs (`POST /repos/{o}/{r}/check-runs/{id}/rerequest`); a GitHub
        Actions job, whose check run id is its job id, is re-run through the Actions API
        (`POST /repos/{o}/{r}/actions/jobs/{id}/rerun`), which starts a new attempt with a new
        check run. A job whose workflow run still runs is refused with a 403 that only means
        "not yet" (`rerun_refusal`): it is answered `busy`. Any other refusal (403, 404, 422)
        is logged and left out of the answer, as is a commit status, which has no such call:
        its failure stands."""
        wanted = set(names)

        def find() -> dict[str, tuple[int, str, str | None]]:
            latest: dict[str, tuple[int, str, str | None]] = {}
            for run in self._repo(repo).get_commit(sha).get_check_runs(filter="latest"):
                if run.name in wanted and (run.name not in latest or run.id > latest[run.name][0]):
                    app = run.app.slug if run.app is not None else None
                    latest[run.name] = (run.id, run.url, app)
            return latest

        runs = await self._call(f"check runs of {repo}@{sha[:7]}", find)
        answer = RerunAnswer()
        for name in names:
            if name not in runs:
                continue
            run_id, url, app = runs[name]
            actions = app == ACTIONS_APP
            what = f"re-run Actions job {run_id}" if actions else f"rerequest check run {run_id}"

            def post(run_id: int = run_id, url: str = url, actions: bool = actions) -> None:
                gh_repo = self._repo(repo)
                target = f"{gh_repo.url}/actions/jobs/{run_id}/rerun" if actions else url
                suffix = "" if actions else "/rerequest"
                gh_repo.requester.requestJsonAndCheck("POST", target + suffix)

            try:
                await self._call(what, post, write=True)
            except ForgeError as exc:
                refusal = rerun_refusal(exc.status, exc.detail)
                if refusal is None or isinstance(exc, RateLimitedError):
                    raise
                if refusal is RerunRefusal.NOT_YET:
                    log.info(
                        "check_rerun_not_yet repo=%s sha=%s check=%s error=%s",
                        repo,
                        sha[:7],
                        name,
                        exc,
                    )
                    answer.busy.append(name)
                    continue
                log.warning(
                    "check_rerun_refused repo=%s sha=%s check=%s app=%s error=%s",
                    repo,
                    sha[:7],
                    name,
                    app,
                    exc,
                )
                continue
            answer.started.append(name)
        return answer

    async def recent_check_names(self, repo: str, branch_prefix: str, days: int) -> set[str]:
        """Check names seen lately on the live integration branches and on the default branch
        (where integration commits land): what CI is known to report, to explain a missing one."""
        since = datetime.now(UTC) - timedelta(days=days)

        def fetch() -> set[str]:
            gh_repo = self._repo(repo)
            shas: list[str] = []
            for ref in gh_repo.get_git_matching_refs(f"heads/{branch_prefix}"):
                shas.append(ref.object.sha)
                if len(shas) >= 10:
                    break
            for commit in gh_repo.get_commits(since=since):
                shas.append(commit.sha)
                if len(shas) >= 20:
                    break
            names: set[str] = set()
            for sha in dict.fromkeys(shas):
                commit = gh_repo.get_commit(sha)
                names.update(run.name for run in commit.get_check_runs())
                names.update(s.context for s in commit.get_combined_status().statuses)
            names.discard(CHECK_NAME)
            return names

        return await self._call(f"recent checks of {repo}", fetch)

    async def read_file(self, repo: str, ref: str, path: str) -> str | None:
        """The file's text at `ref`, asked conditionally (an unchanged file costs a 304, which
        GitHub does not count against the rate limit)."""
        key = (repo, ref, path)

        def fetch() -> str | None:
            gh_repo = self._repo(repo)
            cached = self._file_etags.get(key)
            headers = {"If-None-Match": cached[0]} if cached else {}
            try:
                response_headers, data = gh_repo.requester.requestJsonAndCheck(
                    "GET", f"{gh_repo.url}/contents/{path}", {"ref": ref}, headers
                )
            except UnknownObjectException:
                self._file_etags.pop(key, None)
                return None
            if data is None and cached is not None:  # 304 Not Modified
                return cached[1]
            text = _decode_contents(data, path)
            etag = response_headers.get("etag")
            if etag:
                self._file_etags[key] = (etag, text)
            return text

        return await self._call(f"{path} of {repo}@{ref}", fetch)

    # -- Forge: writes ---------------------------------------------------------------------------
    async def report(self, report: Report) -> None:
        """Show the candidate's state as the `mergebot` check run on its head commit, or as a
        commit status when the token may not write check runs (a token that is not an App's)."""
        if report.repo not in self._no_check_runs:
            try:
                await self._report_check_run(report)
            except ForgeError as exc:
                if exc.status != 403 or isinstance(exc, RateLimitedError):
                    raise
                log.warning(
                    "check_runs_forbidden repo=%s: reporting with commit statuses instead",
                    report.repo,
                )
                self._no_check_runs.add(report.repo)
            else:
                return
        await self._report_status(report)

    async def _report_check_run(self, report: Report) -> None:
        gh_repo = await self._prepare(report.repo)
        status, conclusion = _CHECK_RUN[report.state]
        key = (report.repo, report.sha)
        existing = self._check_runs.get(key)
        if existing is None:

            def find() -> tuple[int, str] | None:
                runs = gh_repo.get_commit(report.sha).get_check_runs(check_name=CHECK_NAME)
                latest = max(runs, key=lambda run: run.id, default=None)
                return (latest.id, latest.status) if latest is not None else None

            existing = await self._call(f"mergebot check run of {report.sha[:7]}", find)
        output = {"title": report.title, "summary": report.summary_markdown}
        if report.text_markdown:
            output["text"] = report.text_markdown
        fields: dict[str, Any] = {"status": status, "output": output}
        if conclusion is not None:
            fields["conclusion"] = conclusion
            fields["completed_at"] = datetime.now(UTC)
        if report.details_url:
            fields["details_url"] = report.details_url
        # A completed check run is not reopened: a new one shows the new attempt (as a re-run).
        if existing is not None and existing[1] != "completed":
            run_id = existing[0]

            def edit() -> None:
                gh_repo.get_check_run(run_id).edit(**fields)

            await self._call(f"update check run {run_id}", edit, write=True)
        else:

            def create() -> int:
                return gh_repo.create_check_run(CHECK_NAME, report.sha, **fields).id

            run_id = await self._call(f"create check run on {report.sha[:7]}", create, write=True)
        self._check_runs[key] = (run_id, status)

    async def _report_status(self, report: Report) -> None:
        gh_repo = await self._prepare(report.repo)
        description = report.title
        if len(description) > _MAX_DESCRIPTION:
            description = description[: _MAX_DESCRIPTION - 1] + "…"
        extra: dict[str, Any] = {}
        if report.details_url:
            extra["target_url"] = report.details_url

        def create() -> None:
            gh_repo.get_commit(report.sha).create_status(
                _COMMIT_STATUS[report.state], description=description, context=CHECK_NAME, **extra
            )

        await self._call(f"commit status on {report.sha[:7]}", create, write=True)

    async def _login(self, repo: str) -> str:
        """Our own login, to recognise our comments (a marker alone could be copied by anyone)."""
        if self._own_login is None:
            if self.credentials.token is not None:

                def fetch() -> str:
                    return self._client(repo).get_user().login

            else:

                def fetch() -> str:
                    integration = GithubIntegration(
                        auth=self._app_auth(), **self._integration_kwargs()
                    )
                    return f"{integration.get_app().slug}[bot]"

            self._own_login = await self._call("own login", fetch)
        return self._own_login

    async def comment(self, repo: str, slug: str, kind: CommentKind, body: str) -> None:
        number = pr_number(slug)
        if number is None:
            log.info("comment_skipped repo=%s slug=%s: not a pull request", repo, slug)
            return
        gh_repo = await self._prepare(repo)
        # The renderer leaves room for the marker; a body from elsewhere is cut here, because
        # GitHub refuses a longer comment outright (422) and the person would see nothing.
        text = f"{fit(body.rstrip(), MAX_COMMENT - MARKER_ROOM)}\n\n{marker(kind)}"
        key = (repo, number, kind)
        comment_id = self._comments.get(key)
        if comment_id is None:
            login = await self._login(repo)

            def find() -> tuple[int, str] | None:
                for item in gh_repo.get_issue(number).get_comments():
                    if marker(kind) in (item.body or "") and item.user.login == login:
                        return item.id, item.body
                return None

            found = await self._call(f"{kind} comment on {repo}#{number}", find)
            if found is not None:
                comment_id = found[0]
                self._comments[key] = comment_id
                if found[1] == text:
                    return
        if comment_id is not None:
            existing_id = comment_id

            def edit() -> None:
                gh_repo.get_issue(number).get_comment(existing_id).edit(text)

            await self._call(f"edit comment {existing_id}", edit, write=True)
            return

        def create() -> int:
            return gh_repo.get_issue(number).create_comment(text).id

        self._comments[key] = await self._call(f"comment on {repo}#{number}", create, write=True)

    async def landed(self, repo: str, slug: str, sha: str, merged_sha: str) -> None:
        """When the candidate's own commit is in base (merge method `merge`), GitHub marks the
        pull request merged by itself; otherwise (squash, rebase) close it with a link."""
        number = pr_number(slug)
        if number is None:
            return
        gh_repo = await self._prepare(repo)

        def compare() -> tuple[bool, str, bool]:
            contained = gh_repo.compare(sha, merged_sha).status in ("ahead", "identical")
            pull = gh_repo.get_pull(number)
            return contained, pull.base.ref, pull.state == "closed"

        contained, base, closed = await self._call(f"compare {sha[:7]}..{merged_sha[:7]}", compare)
        if contained or closed:
            return
        body = render_comment(CommentKind.LANDED, base=base, merged_sha=merged_sha)
        await self.comment(repo, slug, CommentKind.LANDED, body)

        def close() -> None:
            gh_repo.get_pull(number).edit(state="closed")

        await self._call(f"close {repo}#{number}", close, write=True)

    # -- reconciliation reads ----------------------------------------------------------------------
    async def open_pulls(self, repo: str) -> list[PullSnapshot]:
        """Every open pull request of `repo` with its reviews (oldest first), as GitHub's REST
        bodies: reconciliation feeds them to the same translation as webhooks."""

        def fetch() -> list[PullSnapshot]:
            gh_repo = self._repo(repo)
            pulls = _pages(gh_repo, f"{gh_repo.url}/pulls", {"state": "open"})
            return [
                PullSnapshot(
                    pull, tuple(_pages(gh_repo, f"{gh_repo.url}/pulls/{pull['number']}/reviews"))
                )
                for pull in pulls
            ]

        return await self._call(f"open pull requests of {repo}", fetch)

    async def pull(self, repo: str, number: int) -> dict[str, Any] | None:
        """One pull request's REST body (None when it does not exist)."""

        def fetch() -> dict[str, Any] | None:
            gh_repo = self._repo(repo)
            try:
                _, data = gh_repo.requester.requestJsonAndCheck(
                    "GET", f"{gh_repo.url}/pulls/{number}"
                )
            except UnknownObjectException:
                return None
            return data if isinstance(data, dict) else None

        return await self._call(f"{repo}#{number}", fetch)

    # -- base update through the API (an alternative to a git push) ------------------------------
    async def update_base(self, repo: str, base: str, old_sha: str, new_sha: str) -> bool:
        """Move `base` from exactly `old_sha` to `new_sha`, fast-forward only. False when base is
        not at `old_sha` any more or GitHub answers that the update is not a fast-forward."""
        gh_repo = await self._prepare(repo)

        def current() -> str:
            return gh_repo.get_git_ref(f"heads/{base}").object.sha

        if await self._call(f"ref {base} of {repo}", current) != old_sha:
            return False

        def update() -> None:
            gh_repo.requester.requestJsonAndCheck(
                "PATCH",
                f"{gh_repo.url}/git/refs/heads/{base}",
                input={"sha": new_sha, "force": False},
            )

        try:
            await self._call(f"fast-forward {base} of {repo}", update, write=True)
        except ForgeError as exc:
            if exc.status == 422:
                log.info("base_update_refused repo=%s base=%s: not a fast-forward", repo, base)
                return False
            raise
        return True


_PAGE_SIZE = 100


def _pages(
    gh_repo: Repository, url: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every item of a list endpoint, page by page (raw bodies: no per-item completion)."""
    items: list[dict[str, Any]] = []
    for page in range(1, 1000):
        query = {**(params or {}), "per_page": _PAGE_SIZE, "page": page}
        _, data = gh_repo.requester.requestJsonAndCheck("GET", url, query)
        batch = [item for item in (data or []) if isinstance(item, dict)]
        items.extend(batch)
        if len(batch) < _PAGE_SIZE:
            break
    return items


def _decode_contents(data: Any, path: str) -> str | None:
    if not isinstance(data, dict) or data.get("type") != "file":
        return None  # a directory or a submodule: not a config file
    if data.get("encoding") != "base64":
        raise ForgeError(f"{path}: GitHub returned no content (file too large?)")
    raw = base64.b64decode(str(data.get("content", "")))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ForgeError(f"{path}: not UTF-8 text") from None
