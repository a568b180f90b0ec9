"""A small in-memory forge whose check results change while a test runs."""

from __future__ import annotations

from mergebot.forge.base import CheckResult, CommentKind, Permission, Report, RerunAnswer


class FakeForge:
    def __init__(self) -> None:
        self.results: dict[str, list[CheckResult]] = {}
        self.recent: set[str] = set()
        self.calls = 0
        self.reports: list[Report] = []
        self.comments: list[tuple[str, str, CommentKind, str]] = []
        self.landings: list[tuple[str, str, str, str]] = []
        self.files: dict[str, str] = {}  # path -> text, whatever the ref
        self.reads: list[tuple[str, str, str]] = []
        self.read_error: Exception | None = None
        self.reruns: list[tuple[str, list[str]]] = []  # (sha, names) asked to run again
        self.after_rerun: dict[str, list[CheckResult]] = {}  # sha -> its results once re-run
        self.refuse_rerun: set[str] = set()  # names whose re-run the forge refuses
        self.rerun_later: set[str] = set()  # names it re-runs only later (workflow still runs)

    def set(self, sha: str, *results: CheckResult) -> None:
        self.results[sha] = list(results)

    async def permission(self, repo: str, user: str) -> Permission:
        return Permission.WRITE

    async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
        self.calls += 1
        return list(self.results.get(sha, []))

    async def rerun_checks(self, repo: str, sha: str, names: list[str]) -> RerunAnswer:
        self.reruns.append((sha, list(names)))
        busy = [name for name in names if name in self.rerun_later]
        started = [n for n in names if n not in self.refuse_rerun and n not in self.rerun_later]
        if sha in self.after_rerun and started:
            self.results[sha] = self.after_rerun.pop(sha)
        return RerunAnswer(started=started, busy=busy)

    async def recent_check_names(self, repo: str, branch_prefix: str, days: int) -> set[str]:
        return set(self.recent)

    async def read_file(self, repo: str, ref: str, path: str) -> str | None:
        self.reads.append((repo, ref, path))
        if self.read_error is not None:
            raise self.read_error
        return self.files.get(path)

    async def report(self, report: Report) -> None:
        self.reports.append(report)

    async def comment(self, repo: str, slug: str, kind: CommentKind, body: str) -> None:
        self.comments.append((repo, slug, kind, body))

    async def landed(self, repo: str, slug: str, sha: str, merged_sha: str) -> None:
        self.landings.append((repo, slug, sha, merged_sha))
