"""The forge of a plain git remote (`forge = "git"`): a local path, `file://`, ssh or https.

Such a remote has no CI, no pull requests and no users, so most of the interface has a neutral
answer: no check results (so a `checks.required` entry can never pass here — use
`checks.commands`), nothing to report or comment on, nothing to close when a candidate lands.
Files are read from the repo's mirror, which is the one place mergebot sees the remote's content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mergebot.config import REMOTE_NAME
from mergebot.forge.base import CheckResult, CommentKind, Permission, Report, RerunAnswer
from mergebot.git.mirror import Mirror
from mergebot.ids import branch_problem, is_sha

log = logging.getLogger("mergebot.forge.plain")


class PlainGitForge:
    """`Forge` for a remote that is only git."""

    def __init__(self, mirror_for: Callable[[str], Mirror]) -> None:
        self._mirror_for = mirror_for

    async def permission(self, repo: str, user: str) -> Permission:
        """A plain remote has no accounts: who may act is decided by the API token of the
        canonical producer that sent the event, so every named user counts as a writer."""
        return Permission.WRITE

    async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
        return []

    async def rerun_checks(self, repo: str, sha: str, names: list[str]) -> RerunAnswer:
        return RerunAnswer()  # a plain remote reports no checks, so it has none to run again

    async def recent_check_names(self, repo: str, branch_prefix: str, days: int) -> set[str]:
        return set()

    async def read_file(self, repo: str, ref: str, path: str) -> str | None:
        """`path` at `ref` (a sha, or a branch of the remote as last fetched), or None."""
        if is_sha(ref):
            rev = ref
        elif branch_problem(ref) is None:
            rev = f"refs/remotes/{REMOTE_NAME}/{ref}"
        else:
            return None
        if not path or path.startswith(("/", "-")) or ".." in path.split("/"):
            return None
        mirror = self._mirror_for(repo)

        def read() -> str | None:
            status, out, _err = mirror.execute("cat-file", "blob", f"{rev}:{path}", strip=False)
            return out if status == 0 else None

        return await asyncio.to_thread(read)

    async def report(self, report: Report) -> None:
        log.debug("report_skipped repo=%s slug=%s state=%s", report.repo, report.slug, report.state)

    async def comment(self, repo: str, slug: str, kind: CommentKind, body: str) -> None:
        log.debug("comment_skipped repo=%s slug=%s kind=%s", repo, slug, kind)

    async def landed(self, repo: str, slug: str, sha: str, merged_sha: str) -> None:
        log.debug("landed repo=%s slug=%s sha=%s merged=%s", repo, slug, sha, merged_sha)
