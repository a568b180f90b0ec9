"""Golden texts of what mergebot shows on GitHub (check runs and comments)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from mergebot.forge.base import CommentKind, ReportState
from mergebot.forge.render import render_comment, render_report

SHA = "a" * 40
MERGED = "c" * 40


def test_queued_shows_the_position() -> None:
    report = render_report("acme/w", "pr-7", SHA, ReportState.QUEUED, base="main", position=2)
    assert report.title == "Queued at position 2 for main"
    assert report.summary_markdown == (
        "`aaaaaaa` is approved and waits in the merge queue of `main` at position **2**.\n\n"
        "mergebot will build it on top of the latest `main`, run the required checks there, and "
        "fast-forward `main` to the result."
    )


def test_integrating_lists_the_checks_of_the_integration_commit() -> None:
    checks = [
        {"name": "build", "state": "success", "url": "https://ci.example.com/1"},
        {"name": "test", "state": "pending", "url": None},
    ]
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.INTEGRATING, base="main", integration_sha=MERGED,
        checks=checks,
    )  # fmt: skip
    assert report.title == "Integrating into main: 1/2 checks passed"
    assert report.summary_markdown == (
        f"mergebot is testing `aaaaaaa` merged onto the latest `main` as `{MERGED}`.\n\n"
        "| check | state |\n|---|---|\n"
        "| [build](https://ci.example.com/1) | success |\n"
        "| test | pending |"
    )


def test_blocked_by_failed_checks_shows_the_output_tail_and_the_follow_up() -> None:
    details = {"checks": [{"name": "test", "url": "https://ci.example.com/2", "state": "failure",
                           "output_tail": "E assert 1 == 2\nFAILED"}]}  # fmt: skip
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.BLOCKED, base="main", reason="checks_failed",
        details=details, followup_id="pr-7-integration-blocked-aaaaaaa",
    )  # fmt: skip
    assert report.title == "Blocked: checks failed"
    assert report.summary_markdown == (
        "`aaaaaaa` could not be merged into `main`: **checks failed**.\n\n"
        "Checks:\n- [test](https://ci.example.com/2): failure\n"
        "  ```\n  E assert 1 == 2\n  FAILED\n  ```\n\n"
        "Follow-up: `pr-7-integration-blocked-aaaaaaa`. Push a fix to the branch, then comment "
        "`/mergebot resume` on this pull request."
    )


def test_blocked_by_a_missing_check_carries_its_diagnosis() -> None:
    diagnosis = (
        "no check named build was reported for any mergebot/** commit in the last 7 days — is "
        "your CI triggered on pushes to `mergebot/**`?"
    )
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.BLOCKED, base="main", reason="checks_missing",
        details={"missing": ["build"], "diagnosis": diagnosis}, followup_id="f-1",
    )  # fmt: skip
    assert report.title == "Blocked: required check missing"
    assert (
        f"Required checks never reported: `build`\n\nDiagnosis: {diagnosis}\n\nFollow-up: `f-1`"
        in report.summary_markdown
    )


def test_merged_names_the_commit() -> None:
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.MERGED, base="main", merged_sha=MERGED
    )
    assert report.title == "Merged into main as ccccccc"
    assert report.summary_markdown == (
        f"`aaaaaaa` passed its checks and `main` was fast-forwarded to `{MERGED}`."
    )


def test_blocked_comment_says_what_to_do_and_how_to_resume() -> None:
    body = render_comment(
        CommentKind.BLOCKED, sha=SHA, base="main", branch="feature/x", reason="merge_conflict",
        details={"files": ["a.txt", "b/c.py"]}, followup_id="pr-7-integration-blocked-aaaaaaa",
        previous_followup_id="pr-7-integration-blocked-bbbbbbb",
    )  # fmt: skip
    assert body == (
        "### mergebot: blocked by a merge conflict\n\n"
        "`aaaaaaa` could not be merged into `main`.\n\n"
        "Conflicting files:\n- `a.txt`\n- `b/c.py`\n\n"
        "**What to do:** merge or rebase `main` into `feature/x`, resolve the conflicts and push.\n"
        "Then comment `/mergebot resume` to put this pull request back in the queue.\n\n"
        "<sub>Follow-up `pr-7-integration-blocked-aaaaaaa` · previous: "
        "`pr-7-integration-blocked-bbbbbbb`</sub>"
    )


def test_refusal_and_config_error_comments() -> None:
    assert render_comment(
        CommentKind.REFUSED, user="eve", command="merge", repo="acme/w", permission="read"
    ) == (
        "@eve, `/mergebot merge` needs write, maintain or admin permission on `acme/w`; yours is "
        "`read`. Nothing was changed."
    )
    body = render_comment(
        CommentKind.CONFIG_ERROR, file=".github/mergebot.toml", base="main",
        problems=[{"key": "grace_seconds", "reason": "Input should be a valid number"}],
    )  # fmt: skip
    assert body == (
        "### mergebot: `.github/mergebot.toml` is invalid\n\n"
        "mergebot did not integrate anything for this repository while its configuration "
        "cannot be read:\n\n- `grace_seconds`: Input should be a valid number\n\n"
        "Fix the file on `main`; mergebot reads it again for the next candidate."
    )


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_report("acme/w", "pr-7", SHA, ReportState.QUEUED, position=1)  # no base


def test_an_operator_template_overrides_a_check_run_text(tmp_path: Path) -> None:
    (tmp_path / "github").mkdir()
    (tmp_path / "github" / "report_queued.md.j2").write_text(
        "{% set title %}Waiting, number {{ position }}{% endset %}\ncustom {{ slug | md_code }}\n"
    )
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.QUEUED, base="main", position=3,
        templates_dir=str(tmp_path),
    )  # fmt: skip
    assert (report.title, report.summary_markdown) == ("Waiting, number 3", "custom `pr-7`")
    # The templates the operator did not override still ship.
    merged = render_report(
        "acme/w", "pr-7", SHA, ReportState.MERGED, base="main", merged_sha=MERGED,
        templates_dir=str(tmp_path),
    )  # fmt: skip
    assert merged.title == "Merged into main as ccccccc"
