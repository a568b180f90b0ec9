"""An in-process fake GitHub: the REST operations mergebot calls, over real bare git repositories,
sending signed webhooks to mergebot when its state changes.

- Git is real: each repo is a bare repository (with a work clone to make commits); mergebot
  fetches and pushes it by path. Refs, compare, file contents and "merged" all come from git.
- Only documented operations are served: a request is matched to its operation id in the
  committed OpenAPI subset, and every body served is recorded so a test validates it against
  that operation's schema.
- It writes its own address into every `url` (PyGithub follows them and refuses other hosts).
- State changes send webhooks like GitHub does: a ref moved → `push`; a pull request's head moved
  → `pull_request synchronize`; a pull request's head reached its base → `pull_request closed`
  (merged). Ref changes are noticed by `sync()`, called on every request and by a watcher task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.fakegithub import bodies, webhooks
from tests.fakegithub.schemas import operation_for, spec
from tests.gitutil import GitRemote, git

ZERO = "0" * 40
ACTIONS_APP = "github-actions"  # the app of GitHub Actions' check runs
OWN_APP = "mergebot"  # the app mergebot authenticates as: the app of the check runs it creates


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Pull:
    number: int
    author: str
    head_ref: str
    head_sha: str
    base_ref: str
    title: str
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merge_commit_sha: str | None = None
    updated_at: str = field(default_factory=now)


@dataclass
class Served:
    op_id: str
    status: int
    body: Any


@dataclass
class FakeRepo:
    full_name: str
    remote: GitRemote
    permissions: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, Pull] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    # CI: check name -> conclusion, reported on every push to a branch under `ci_prefix`.
    ci: dict[str, str] = field(default_factory=dict)
    ci_prefix: str = "mergebot/"
    # A check run asked to run again finishes with this conclusion, or with its old one when
    # unnamed: a re-requested one (`checks/rerequest-run`) is updated in place by the app that
    # owns it (GitHub's documented answer); a re-run GitHub Actions job
    # (`actions/re-run-job-for-workflow-run`) is a new job with a new check run.
    ci_on_rerequest: dict[str, str] = field(default_factory=dict)
    # The app of the check runs CI reports: GitHub Actions, or another CI's app (the app
    # mergebot authenticates as, `OWN_APP`, when one app is both).
    ci_app: str = ACTIONS_APP
    # Checks of `ci` that a push's workflow run leaves in progress (its other jobs finish at
    # once) until `finish_checks`: while one runs, GitHub refuses to re-run any job of that
    # workflow run (403 "The workflow run containing this job is already running").
    ci_running: set[str] = field(default_factory=set)
    # Why GitHub refuses to re-run an Actions job for good (403 with this message), e.g.
    # "Resource not accessible by integration"; None: jobs are re-runnable.
    refuse_job_rerun: str | None = None
    # A token that is not an App's may not write check runs (403): mergebot falls back to statuses.
    check_runs_forbidden: bool = False

    @property
    def bare(self) -> Path:
        return self.remote.bare


Handler = Callable[["FakeGitHub", web.Request, FakeRepo | None, dict[str, str]], Awaitable[Any]]


class FakeGitHub:
    def __init__(
        self,
        root: Path,
        *,
        token: str,
        webhook_secret: str,
        webhook_url: str | None = None,
        bot_login: str = "mergebot-bot",
    ) -> None:
        self.root = root
        self.token = token
        self.bot_login = bot_login
        self.sender = webhooks.WebhookSender(webhook_url, webhook_secret)
        self.repos: dict[str, FakeRepo] = {}
        self.served: list[Served] = []
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        self._later: set[asyncio.Task[None]] = set()  # what apps do after answering
        self.api_url = ""

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> FakeGitHub:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}"
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def close(self) -> None:
        for task in list(self._later):
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._runner is not None:
            await self._runner.cleanup()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self.sync()

    def add_repo(self, full_name: str) -> FakeRepo:
        remote = GitRemote(self.root, full_name.replace("/", "__"))
        repo = FakeRepo(full_name, remote)
        repo.refs = _refs(remote.bare)
        self.repos[full_name] = repo
        return repo

    def next_id(self) -> int:
        return next(self._ids)

    def later(self, work: Awaitable[None]) -> None:
        """Do `work` after answering, as an app or a runner does on GitHub."""

        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    # -- what people do on GitHub ---------------------------------------------------------------
    async def open_pull(
        self, full_name: str, branch: str, author: str, *, base: str = "main", title: str = ""
    ) -> int:
        await self.sync()
        repo = self.repos[full_name]
        number = max(repo.pulls, default=0) + 1
        sha = repo.refs[f"refs/heads/{branch}"]
        pull = Pull(number, author, branch, sha, base, title or f"Change {branch}")
        repo.pulls[number] = pull
        await self.sender.send(
            "pull_request",
            webhooks.pull_request(self.api_url, "opened", self.pull_body(repo, pull), author),
        )
        return number

    async def push(self, full_name: str, branch: str, path: str, content: str) -> str:
        """Commit a change on `branch` (from its current tip) and push it; the webhooks follow."""
        repo = self.repos[full_name]
        git(repo.remote.work, "fetch", "-q", "origin")
        repo.remote.checkout(branch, branch)
        repo.remote.commit(path, content, f"{branch}: change {path}")
        sha = repo.remote.push(branch)
        await self.sync()
        return sha

    async def review(
        self, full_name: str, number: int, user: str, *, state: str = "APPROVED"
    ) -> int:
        await self.sync()
        repo = self.repos[full_name]
        pull = repo.pulls[number]
        review_id = self.next_id()
        body = bodies.review(self.api_url, full_name, number, review_id, login=user, state=state,
                             sha=pull.head_sha)  # fmt: skip
        body["submitted_at"] = now()
        repo.reviews.setdefault(number, []).append(body)
        await self.sender.send(
            "pull_request_review",
            webhooks.review(self.api_url, "submitted", body, self.pull_body(repo, pull)),
        )
        return review_id

    async def comment(self, full_name: str, number: int, user: str, body: str) -> int:
        repo = self.repos[full_name]
        comment = self._new_comment(repo, number, user, body)
        await self.sender.send(
            "issue_comment",
            webhooks.issue_comment(
                self.api_url, "created", comment, self.pull_body(repo, repo.pulls[number])
            ),
        )
        return int(comment["id"])

    async def close_pull(self, full_name: str, number: int, user: str) -> None:
        repo = self.repos[full_name]
        pull = repo.pulls[number]
        pull.state, pull.updated_at = "closed", now()
        await self.sender.send(
            "pull_request",
            webhooks.pull_request(self.api_url, "closed", self.pull_body(repo, pull), user),
        )

    async def complete_check(
        self,
        full_name: str,
        sha: str,
        name: str,
        conclusion: str = "success",
        *,
        suite_id: int | None = None,
    ) -> dict[str, Any]:
        """CI reports check run `name` on `sha`, completed (as `ci_app`'s run), in check suite
        (workflow run) `suite_id`, else in one of its own."""
        repo = self.repos[full_name]
        run_id = self.next_id()
        run = bodies.check_run(
            self.api_url, full_name, run_id, name=name, head_sha=sha, status="completed",
            conclusion=conclusion, started_at=now(), completed_at=now(), app_slug=repo.ci_app,
            suite_id=suite_id,
        )  # fmt: skip
        repo.check_runs[run_id] = run
        await self.sender.send(
            "check_run", webhooks.check_run(self.api_url, "completed", run, full_name)
        )
        return run

    def start_check(self, full_name: str, sha: str, name: str, *, suite_id: int) -> None:
        """CI starts check run `name` on `sha` (as `ci_app`'s run) and leaves it in progress."""
        repo = self.repos[full_name]
        run_id = self.next_id()
        repo.check_runs[run_id] = bodies.check_run(
            self.api_url, full_name, run_id, name=name, head_sha=sha, status="in_progress",
            conclusion=None, started_at=now(), app_slug=repo.ci_app, suite_id=suite_id,
        )  # fmt: skip

    async def finish_checks(self, full_name: str) -> int:
        """Every check run left in progress by `ci_running` completes with its `ci`
        conclusion (its workflow run finishes); how many did."""
        repo = self.repos[full_name]
        running = [
            r for r in repo.check_runs.values()
            if r["status"] != "completed" and r["name"] in repo.ci_running
        ]  # fmt: skip
        for run in running:
            done = {**run, "status": "completed", "conclusion": repo.ci[run["name"]]}
            done["completed_at"] = now()
            repo.check_runs[int(run["id"])] = done
            await self.sender.send(
                "check_run", webhooks.check_run(self.api_url, "completed", done, full_name)
            )
        return len(running)

    # -- noticing git changes --------------------------------------------------------------------
    async def sync(self) -> None:
        """Turn ref changes in the bare repositories into state and webhooks, like GitHub."""
        async with self._sync_lock:
            for repo in list(self.repos.values()):
                current = await asyncio.to_thread(_refs, repo.bare)
                previous, repo.refs = repo.refs, current
                for name in sorted(set(previous) | set(current)):
                    before, after = previous.get(name, ZERO), current.get(name, ZERO)
                    if before != after:
                        await self._ref_moved(repo, name, before, after)
                await self._detect_merged(repo)

    async def _ref_moved(self, repo: FakeRepo, name: str, before: str, after: str) -> None:
        if not name.startswith("refs/heads/"):
            return
        pusher = "mergebot-bot"
        await self.sender.send(
            "push", webhooks.push(self.api_url, repo.full_name, name, before, after, pusher)
        )
        branch = name.removeprefix("refs/heads/")
        for pull in repo.pulls.values():
            if pull.state == "open" and pull.head_ref == branch and after != ZERO:
                pull.head_sha, pull.updated_at = after, now()
                await self.sender.send(
                    "pull_request",
                    webhooks.pull_request(
                        self.api_url, "synchronize", self.pull_body(repo, pull), pull.author,
                        before=before, after=after,
                    ),
                )  # fmt: skip
        if after != ZERO and branch.startswith(repo.ci_prefix):
            suite = self.next_id()  # one workflow run with a job per check
            for check, conclusion in repo.ci.items():
                if check in repo.ci_running:
                    self.start_check(repo.full_name, after, check, suite_id=suite)
                else:
                    await self.complete_check(
                        repo.full_name, after, check, conclusion, suite_id=suite
                    )

    async def _detect_merged(self, repo: FakeRepo) -> None:
        for pull in repo.pulls.values():
            base_sha = repo.refs.get(f"refs/heads/{pull.base_ref}")
            if pull.state != "open" or base_sha is None:
                continue
            if await asyncio.to_thread(_is_ancestor, repo.bare, pull.head_sha, base_sha):
                pull.state, pull.merged, pull.merge_commit_sha = "closed", True, base_sha
                pull.updated_at = now()
                await self.sender.send(
                    "pull_request",
                    webhooks.pull_request(
                        self.api_url, "closed", self.pull_body(repo, pull), self.bot_login
                    ),
                )

    # -- REST ------------------------------------------------------------------------------------
    def pull_body(self, repo: FakeRepo, pull: Pull, *, full: bool = True) -> dict[str, Any]:
        body = bodies.pull(
            self.api_url, repo.full_name, pull.number, author=pull.author,
            head_ref=pull.head_ref, head_sha=pull.head_sha, base_ref=pull.base_ref,
            base_sha=repo.refs.get(f"refs/heads/{pull.base_ref}", ZERO), state=pull.state,
            draft=pull.draft, merged=pull.merged, merge_commit_sha=pull.merge_commit_sha,
            title=pull.title, full=full,
        )  # fmt: skip
        body["updated_at"] = pull.updated_at
        if pull.state == "closed":
            body["closed_at"] = pull.updated_at
        return body

    def _new_comment(self, repo: FakeRepo, number: int, user: str, text: str) -> dict[str, Any]:
        comment = bodies.issue_comment(
            self.api_url, repo.full_name, number, self.next_id(), login=user, body=text,
            bot=user == self.bot_login,
        )  # fmt: skip
        comment["created_at"] = comment["updated_at"] = now()
        repo.comments.setdefault(number, []).append(comment)
        return comment

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.rel_url.raw_path)
        self.requests.append((request.method, path))
        if request.headers.get("Authorization") != f"token {self.token}":
            return web.json_response(bodies.error("Bad credentials"), status=401)
        op_id = operation_for(request.method, path)
        handler = HANDLERS.get(op_id or "")
        if op_id is None or handler is None:
            return web.json_response(bodies.error("Not Found"), status=404)
        match = re.match(r"^/repos/([^/]+/[^/]+)", path)
        repo = self.repos.get(match.group(1)) if match else None
        if match and repo is None:
            return self._reply(op_id, 404, bodies.error("Not Found"))
        await self.sync()
        result = await handler(self, request, repo, _params(op_id, path))
        status, body, headers = result if len(result) == 3 else (*result, {})
        if status == 304:
            return web.Response(status=304, headers=headers)
        return self._reply(op_id, status, body, headers)

    def _reply(
        self, op_id: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.served.append(Served(op_id, status, body))
        return web.json_response(body, status=status, headers=headers)

    def writes(self, method: str, pattern: str) -> list[str]:
        return [p for m, p in self.requests if m == method and re.search(pattern, p)]


def _refs(bare: Path) -> dict[str, str]:
    out = git(bare, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads")
    return {name: sha for sha, name in (line.split(" ", 1) for line in out.splitlines())}


def _is_ancestor(bare: Path, ancestor: str, descendant: str) -> bool:
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, descendant],
        cwd=bare, capture_output=True, check=False,
    )  # fmt: skip
    return result.returncode == 0


def _git_or_none(bare: Path, *args: str) -> str | None:
    try:
        return git(bare, *args)
    except RuntimeError:
        return None


_PARAM_NAMES = re.compile(r"\{([a-z_]+)\}")


def _params(op_id: str, path: str) -> dict[str, str]:
    template = spec()["operations"][op_id]["path"]
    names = _PARAM_NAMES.findall(template)
    pattern = re.escape(template)
    for name in names:
        wide = name in ("path", "ref")
        pattern = pattern.replace(
            re.escape("{" + name + "}"), f"(?P<{name}>{'.+' if wide else '[^/]+'})"
        )
    match = re.match(f"^{pattern}$", path)
    assert match is not None
    return match.groupdict()


# -- operation handlers: (status, body[, headers]) ----------------------------------------------
Result = tuple[int, Any] | tuple[int, Any, dict[str, str]]


async def _user(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    return 200, bodies.private_user(gh.api_url, gh.bot_login)


async def _permission(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    level = repo.permissions.get(p["username"], "none")
    if p["username"] == "ghost":
        return 404, bodies.error("Not Found")
    return 200, bodies.permission(gh.api_url, p["username"], level)


def _resolve(repo: FakeRepo, ref: str) -> str | None:
    return _git_or_none(repo.bare, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")


async def _combined_status(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    sha = _resolve(repo, p["ref"])
    if sha is None:
        return 404, bodies.error("No commit found for SHA: " + p["ref"])
    latest: dict[str, dict[str, Any]] = {}
    for status in repo.statuses.get(sha, []):
        latest[status["context"]] = status
    items = [{k: v for k, v in s.items() if k != "creator"} for s in latest.values()]
    return 200, bodies.combined_status(gh.api_url, repo.full_name, sha, items)


async def _list_check_runs(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    sha = _resolve(repo, p["ref"])
    runs = [r for r in repo.check_runs.values() if r["head_sha"] == sha]
    name = req.query.get("check_name")
    if name:
        runs = [r for r in runs if r["name"] == name]
    if req.query.get("filter", "latest") == "latest":
        latest: dict[str, dict[str, Any]] = {}
        for run in runs:
            latest[run["name"]] = run
        runs = list(latest.values())
    return 200, bodies.check_runs(sorted(runs, key=lambda r: -int(r["id"])))


def _check_run_from(
    gh: FakeGitHub, repo: FakeRepo, run_id: int, data: dict[str, Any], base: dict[str, Any] | None
) -> dict[str, Any]:
    merged = {**(base or {}), **data}
    output = merged.get("output") or {}
    run = bodies.check_run(
        gh.api_url, repo.full_name, run_id, name=merged["name"], head_sha=merged["head_sha"],
        status=merged.get("status") or ("completed" if merged.get("conclusion") else "queued"),
        conclusion=merged.get("conclusion"), title=output.get("title"),
        summary=output.get("summary"), text=output.get("text"),
        details_url=merged.get("details_url"),
        started_at=merged.get("started_at") or now(),
        completed_at=merged.get("completed_at") or now(), app_slug=OWN_APP,
    )  # fmt: skip
    if data.get("conclusion"):
        run["status"] = "completed"
        run["completed_at"] = merged.get("completed_at") or now()
    return run


async def _create_check_run(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    data = await req.json()
    if repo.check_runs_forbidden:
        return 403, bodies.error("Resource not accessible by integration")
    if (refused := _output_too_long(data)) is not None:
        return refused
    if not isinstance(data.get("name"), str) or _resolve(repo, str(data.get("head_sha"))) is None:
        return 422, {
            "message": "Validation Failed",
            "errors": [{"resource": "CheckRun", "code": "invalid"}],
            "documentation_url": "https://docs.github.com/rest",
        }
    run_id = gh.next_id()
    run = _check_run_from(gh, repo, run_id, data, None)
    repo.check_runs[run_id] = run
    return 201, run


async def _update_check_run(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    run_id = int(p["check_run_id"])
    existing = repo.check_runs.get(run_id)
    if existing is None:
        return 404, bodies.error("Not Found")
    data = await req.json()
    if (refused := _output_too_long(data)) is not None:
        return refused
    run = _check_run_from(gh, repo, run_id, data, {**existing, "output": existing["output"]})
    repo.check_runs[run_id] = run
    return 200, run


async def _rerequest_check_run(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    """GitHub answers at once; the app owning the run then updates that same run (same id and
    link) — here right after, with `ci_on_rerequest`'s conclusion, and a `completed` webhook.
    403 for another app's run: only the authenticated app may re-request its runs."""
    assert repo is not None
    run_id = int(p["check_run_id"])
    run = repo.check_runs.get(run_id)
    if run is None:
        return 404, bodies.error("Not Found")
    if run["app"]["slug"] != OWN_APP:  # only the authenticated app's own runs
        return 403, bodies.error("This check run is not rerequestable")
    if run["status"] != "completed":
        return 422, bodies.error("This check run is not rerequestable")

    async def rerun() -> None:
        conclusion = repo.ci_on_rerequest.get(run["name"], run["conclusion"])
        again = {**run, "status": "completed", "conclusion": conclusion}
        again.update(started_at=now(), completed_at=now())
        repo.check_runs[run_id] = again
        await gh.sender.send(
            "check_run", webhooks.check_run(gh.api_url, "completed", again, repo.full_name)
        )

    gh.later(rerun())
    return 201, {}


async def _rerun_job(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    """An Actions job's id is its check run's id. GitHub answers 201 with an empty body and
    starts a new attempt of the workflow run: the job runs again as a new job, with a new check
    run (new id and link) on the same commit, in the same workflow run (check suite) — queued
    at once, then completed with `ci_on_rerequest`'s conclusion. 404 for an id that is no
    Actions job; 403 with `refuse_job_rerun`'s message when the job may not be re-run, and
    GitHub's own 403 while any job of its workflow run has not completed."""
    assert repo is not None
    run = repo.check_runs.get(int(p["job_id"]))
    if run is None or run["app"]["slug"] != ACTIONS_APP:
        return 404, bodies.error("Not Found")
    if repo.refuse_job_rerun is not None:
        return 403, bodies.error(repo.refuse_job_rerun)
    suite = run["check_suite"]["id"]
    if any(
        r["check_suite"]["id"] == suite and r["status"] != "completed"
        for r in repo.check_runs.values()
        if r["app"]["slug"] == ACTIONS_APP
    ):
        return 403, bodies.error(
            "The workflow run containing this job is already running",
            "https://docs.github.com/rest/actions/workflow-runs#re-run-a-job-from-a-workflow-run",
            "403",
        )
    job_id = gh.next_id()
    queued = bodies.check_run(
        gh.api_url, repo.full_name, job_id, name=run["name"], head_sha=run["head_sha"],
        status="queued", conclusion=None, started_at=now(), app_slug=ACTIONS_APP, suite_id=suite,
    )  # fmt: skip
    repo.check_runs[job_id] = queued

    async def finish() -> None:
        conclusion = repo.ci_on_rerequest.get(run["name"], run["conclusion"])
        done = {**queued, "status": "completed", "conclusion": conclusion, "completed_at": now()}
        repo.check_runs[job_id] = done
        await gh.sender.send(
            "check_run", webhooks.check_run(gh.api_url, "completed", done, repo.full_name)
        )

    gh.later(finish())
    return 201, {}


async def _create_status(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    data = await req.json()
    if _resolve(repo, p["sha"]) is None or data.get("state") not in (
        "error",
        "failure",
        "pending",
        "success",
    ):
        return 422, {
            "message": "Validation Failed",
            "errors": [],
            "documentation_url": "https://docs.github.com/rest",
        }
    status = bodies.status(
        gh.api_url, repo.full_name, gh.next_id(), context=data.get("context", "default"),
        state=data["state"], description=data.get("description"), target_url=data.get("target_url"),
        creator=gh.bot_login,
    )  # fmt: skip
    status["created_at"] = status["updated_at"] = now()
    repo.statuses.setdefault(p["sha"], []).append(status)
    return 201, status


async def _content(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    ref = req.query.get("ref", "main")
    blob = _git_or_none(repo.bare, "rev-parse", "--verify", "-q", f"{ref}:{p['path']}")
    if blob is None:
        return 404, bodies.error("Not Found")
    data = subprocess.run(
        ["git", "cat-file", "blob", blob], cwd=repo.bare, capture_output=True, check=True
    ).stdout
    etag = f'"{blob}"'
    if req.headers.get("If-None-Match") == etag:
        return 304, None, {"ETag": etag}
    return (
        200,
        bodies.content_file(gh.api_url, repo.full_name, p["path"], ref, data),
        {"ETag": etag},
    )


def _pull_number(repo: FakeRepo, p: dict[str, str], key: str) -> int | None:
    number = int(p[key])
    return number if number in repo.pulls else None


async def _list_comments(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    number = _pull_number(repo, p, "issue_number")
    if number is None:
        return 404, bodies.error("Not Found")
    return 200, list(repo.comments.get(number, []))


# GitHub's limits (checked facts): longer requests answer 422 and nothing is shown.
MAX_COMMENT_BODY = 65_536
MAX_OUTPUT = {"title": 255, "summary": 65_535, "text": 65_535}


def _too_long(resource: str, name: str) -> Result:
    return 422, {
        "message": "Validation Failed",
        "errors": [{"resource": resource, "code": "custom", "field": name,
                    "message": f"{name} is too long"}],
        "documentation_url": "https://docs.github.com/rest",
    }  # fmt: skip


def _output_too_long(data: dict[str, Any]) -> Result | None:
    output = data.get("output") or {}
    for name, limit in MAX_OUTPUT.items():
        if len(str(output.get(name) or "")) > limit:
            return _too_long("CheckRun", f"output.{name}")
    return None


async def _create_comment(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    number = _pull_number(repo, p, "issue_number")
    if number is None:
        return 404, bodies.error("Not Found")
    data = await req.json()
    if len(str(data["body"])) > MAX_COMMENT_BODY:
        return _too_long("IssueComment", "body")
    return 201, gh._new_comment(repo, number, gh.bot_login, str(data["body"]))


async def _update_comment(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    data = await req.json()
    if len(str(data["body"])) > MAX_COMMENT_BODY:
        return _too_long("IssueComment", "body")
    for comments in repo.comments.values():
        for comment in comments:
            if comment["id"] == int(p["comment_id"]):
                if comment["user"]["login"] != gh.bot_login:
                    return 403, bodies.error("Resource not accessible by integration")
                comment["body"], comment["updated_at"] = str(data["body"]), now()
                return 200, comment
    return 404, bodies.error("Not Found")


async def _list_pulls(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    state = req.query.get("state", "open")
    pulls = [pl for pl in repo.pulls.values() if state == "all" or pl.state == state]
    base = req.query.get("base")
    if base:
        pulls = [pl for pl in pulls if pl.base_ref == base]
    return 200, [
        gh.pull_body(repo, pl, full=False) for pl in sorted(pulls, key=lambda x: -x.number)
    ]


async def _get_pull(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    number = _pull_number(repo, p, "pull_number")
    if number is None:
        return 404, bodies.error("Not Found")
    return 200, gh.pull_body(repo, repo.pulls[number])


async def _update_pull(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    number = _pull_number(repo, p, "pull_number")
    if number is None:
        return 404, bodies.error("Not Found")
    data = await req.json()
    pull = repo.pulls[number]
    if data.get("state") in ("open", "closed") and data["state"] != pull.state:
        pull.state, pull.updated_at = data["state"], now()
        action = "closed" if pull.state == "closed" else "reopened"
        await gh.sender.send(
            "pull_request",
            webhooks.pull_request(gh.api_url, action, gh.pull_body(repo, pull), gh.bot_login),
        )
    return 200, gh.pull_body(repo, pull)


async def _list_reviews(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    number = _pull_number(repo, p, "pull_number")
    if number is None:
        return 404, bodies.error("Not Found")
    return 200, [{**r, "state": r["state"].upper()} for r in repo.reviews.get(number, [])]


def _commit_body(gh: FakeGitHub, repo: FakeRepo, sha: str) -> dict[str, Any]:
    line = git(repo.bare, "rev-list", "--parents", "-n", "1", sha).split()
    message = git(repo.bare, "log", "-1", "--format=%B", sha)
    tree = git(repo.bare, "rev-parse", f"{sha}^{{tree}}")
    return bodies.commit(
        gh.api_url, repo.full_name, sha, parents=line[1:], message=message, tree=tree
    )


async def _compare(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    base_ref, head_ref = p["base"], p["head"]
    base, head = _resolve(repo, base_ref), _resolve(repo, head_ref)
    if base is None or head is None:
        return 404, bodies.error("Not Found")
    merge_base = git(repo.bare, "merge-base", base, head)
    ahead = git(repo.bare, "rev-list", f"{base}..{head}").split()
    behind = git(repo.bare, "rev-list", f"{head}..{base}").split()
    status = ("identical" if not ahead and not behind else "ahead" if not behind
              else "behind" if not ahead else "diverged")  # fmt: skip
    commits = [_commit_body(gh, repo, sha) for sha in reversed(ahead)]
    base_body, merge_base_body = _commit_body(gh, repo, base), _commit_body(gh, repo, merge_base)
    return 200, bodies.comparison(
        gh.api_url, repo.full_name, base_body, merge_base_body, status=status,
        ahead_by=len(ahead), behind_by=len(behind), commits=commits,
    )  # fmt: skip


async def _get_ref(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    name = "refs/" + p["ref"]
    sha = repo.refs.get(name)
    if sha is None:
        return 404, bodies.error("Not Found")
    return 200, bodies.git_ref(gh.api_url, repo.full_name, name, sha)


async def _matching_refs(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    prefix = "refs/" + p["ref"]
    return 200, [
        bodies.git_ref(gh.api_url, repo.full_name, name, sha)
        for name, sha in sorted(repo.refs.items()) if name.startswith(prefix)
    ]  # fmt: skip


async def _update_ref(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    data = await req.json()
    name = "refs/" + p["ref"]
    old = repo.refs.get(name)
    new = _resolve(repo, str(data.get("sha")))
    if old is None or new is None:
        return 422, {
            "message": "Reference does not exist",
            "documentation_url": "https://docs.github.com/rest",
        }
    if not data.get("force") and not _is_ancestor(repo.bare, old, new):
        return 422, {
            "message": "Update is not a fast forward",
            "documentation_url": "https://docs.github.com/rest",
        }
    git(repo.bare, "update-ref", name, new, old)
    await gh.sync()
    return 200, bodies.git_ref(gh.api_url, repo.full_name, name, new)


async def _list_commits(
    gh: FakeGitHub, req: web.Request, repo: FakeRepo | None, p: dict[str, str]
) -> Result:
    assert repo is not None
    ref = req.query.get("sha", "main")
    args = ["rev-list", "--first-parent", "-n", "30", ref]
    if req.query.get("since"):
        args.insert(1, f"--since={req.query['since']}")
    shas = (_git_or_none(repo.bare, *args) or "").split()
    return 200, [_commit_body(gh, repo, sha) for sha in shas]


HANDLERS: dict[str, Handler] = {
    "users/get-authenticated": _user,
    "repos/get-collaborator-permission-level": _permission,
    "repos/get-combined-status-for-ref": _combined_status,
    "checks/list-for-ref": _list_check_runs,
    "checks/create": _create_check_run,
    "checks/update": _update_check_run,
    "checks/rerequest-run": _rerequest_check_run,
    "actions/re-run-job-for-workflow-run": _rerun_job,
    "repos/create-commit-status": _create_status,
    "repos/get-content": _content,
    "issues/list-comments": _list_comments,
    "issues/create-comment": _create_comment,
    "issues/update-comment": _update_comment,
    "pulls/list": _list_pulls,
    "pulls/get": _get_pull,
    "pulls/update": _update_pull,
    "pulls/list-reviews": _list_reviews,
    "repos/compare-commits": _compare,
    "git/get-ref": _get_ref,
    "git/list-matching-refs": _matching_refs,
    "git/update-ref": _update_ref,
    "repos/list-commits": _list_commits,
}
