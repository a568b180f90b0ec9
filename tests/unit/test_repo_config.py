"""A repo's own `.github/mergebot.toml` overlays the server's config — entirely or not at all."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mergebot.config import ConfigError, ServerConfig
from mergebot.forge.base import (
    CheckResult,
    CommentKind,
    Permission,
    Report,
    ReportState,
    RerunAnswer,
)
from mergebot.forge.repo_config import effective_repo_config, report_config_error

REPO = "acme/widgets"


@dataclass
class FileForge:
    """A forge with files and a record of what was shown; nothing else is called."""

    files: dict[tuple[str, str], str] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    comments: list[tuple[str, CommentKind, str]] = field(default_factory=list)

    async def read_file(self, repo: str, ref: str, path: str) -> str | None:
        return self.files.get((ref, path))

    async def report(self, report: Report) -> None:
        self.reports.append(report)

    async def comment(self, repo: str, slug: str, kind: CommentKind, body: str) -> None:
        self.comments.append((slug, kind, body))

    async def permission(self, repo: str, user: str) -> Permission:
        raise AssertionError("not used")

    async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
        raise AssertionError("not used")

    async def rerun_checks(self, repo: str, sha: str, names: list[str]) -> RerunAnswer:
        raise AssertionError("not used")

    async def recent_check_names(self, repo: str, branch_prefix: str, days: int) -> set[str]:
        raise AssertionError("not used")

    async def landed(self, repo: str, slug: str, sha: str, merged_sha: str) -> None:
        raise AssertionError("not used")


SERVER = ServerConfig({}, {REPO: {"forge": "github", "base_branch": "trunk"}})


async def test_the_repo_file_on_the_base_branch_overrides_the_server() -> None:
    forge = FileForge({("trunk", ".github/mergebot.toml"): 'merge_method = "squash"\n'})
    config = await effective_repo_config(forge, SERVER, REPO)
    assert config.merge_method == "squash"
    assert config.base_branch == "trunk"


async def test_no_repo_file_means_the_server_config() -> None:
    assert await effective_repo_config(FileForge(), SERVER, REPO) == SERVER.repo(REPO)


async def test_a_broken_file_raises_with_every_problem_and_is_reported() -> None:
    text = 'mode = "shadow"\ngrace_seconds = "soon"\n'
    forge = FileForge({("trunk", ".github/mergebot.toml"): text})
    with pytest.raises(ConfigError) as info:
        await effective_repo_config(forge, SERVER, REPO)
    keys = {p.key for p in info.value.problems}
    assert keys == {"mode", "grace_seconds"}

    await report_config_error(
        forge, repo=REPO, slug="pr-3", sha="a" * 40, base="trunk", error=info.value
    )
    (report,) = forge.reports
    assert report.state is ReportState.BLOCKED
    assert report.title == "Blocked: invalid .github/mergebot.toml"
    assert "`mode`: may only be set in the server's config file" in report.summary_markdown
    ((slug, kind, body),) = forge.comments
    assert (slug, kind) == ("pr-3", CommentKind.CONFIG_ERROR)
    assert "- `grace_seconds`:" in body


async def test_a_file_that_is_not_toml_is_one_syntax_problem() -> None:
    forge = FileForge({("trunk", ".github/mergebot.toml"): "merge_method = \n"})
    with pytest.raises(ConfigError) as info:
        await effective_repo_config(forge, SERVER, REPO)
    assert [p.key for p in info.value.problems] == ["<syntax>"]
