"""Golden texts of what mergebot shows on GitHub (check runs and comments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from mergebot.forge.base import CommentKind, ReportState
from mergebot.forge.render import render_comment, render_report
from mergebot.github.reporter import Facts, plan
from mergebot.notify.view import Links, followup_context
from mergebot.queue import QueueItem, Status
from tests import notify_data as data

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


def test_integrating_in_a_train_says_which_car_it_is_stacked_on() -> None:
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.INTEGRATING, base="main", integration_sha=MERGED,
        checks=[], car=2, stacked_on="pr-6",
    )  # fmt: skip
    assert report.summary_markdown.startswith(
        "mergebot is testing `aaaaaaa` merged onto the candidates ahead of it in the train "
        f"(car 2, on top of `pr-6`) as `{MERGED}`."
    )
    beside = render_report(
        "acme/w", "pr-7", SHA, ReportState.INTEGRATING, base="main", integration_sha=None,
        checks=[], car=2, stacked_on="base",
    )  # fmt: skip
    assert beside.summary_markdown.startswith(
        "mergebot is testing `aaaaaaa` merged onto the latest `main`."
    )


def test_blocked_summary_says_it_once_and_the_text_is_the_follow_up() -> None:
    followup = data.followup(hostile=True)
    todo = followup_context(followup, LINKS)
    report = render_report(
        data.REPO, "pr-42", data.SHA, ReportState.BLOCKED, base="main", followup=todo
    )
    assert report.title == "Blocked: checks failed"
    assert report.summary_markdown.startswith(
        "`3f5e2a9` could not be merged into `main`: **checks failed** (2 failed)."
    )
    assert f"[`{followup.id}`]({todo['followup_url']})" in report.summary_markdown
    # The check run's text is the follow-up todo, as on the pull request and the dashboard.
    assert report.text_markdown is not None
    assert report.text_markdown.startswith("| | |\n|---|---|\n| Follow-up |")
    assert "### What to do" in report.text_markdown


def test_merged_names_the_commit() -> None:
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.MERGED, base="main", merged_sha=MERGED
    )
    assert report.title == "Merged into main as ccccccc"
    assert report.summary_markdown == (
        f"`aaaaaaa` passed its checks and `main` was fast-forwarded to `{MERGED}`."
    )


GOLDEN = Path(__file__).resolve().parents[1] / "golden"
LINKS = Links("https://mergebot.example.com", "https://github.com")


def blocked_item(followup_id: str | None, **integration: Any) -> QueueItem:
    return QueueItem(
        repo=data.REPO, base="main", slug="pr-42", branch="feature/faster-widgets", sha=data.SHA,
        status=Status.BLOCKED, ready_at=data.AT, updated_at=data.AT, followup_id=followup_id,
        reasons=["merge_conflict"], integration=integration,
    )  # fmt: skip


@pytest.mark.parametrize("hostile", [False, True], ids=["realistic", "hostile"])
def test_the_blocked_comment_is_the_follow_up_todo(hostile: bool) -> None:
    followup = data.followup(hostile=hostile)
    decided = plan(blocked_item(followup.id), Facts(followup=followup), links=LINKS)
    assert decided.comment is not None
    kind, body = decided.comment
    assert kind is CommentKind.BLOCKED
    # Word for word the exported todo (`mergebot followups`), reviewed in its golden file.
    scenario = "hostile" if hostile else "realistic"
    assert body + "\n" == (GOLDEN / "followup" / f"todo-{scenario}-open.md").read_text()
    assert "Comment `/mergebot resume` on the pull request" in body
    assert f"`{followup.id}`" in decided.report.summary_markdown
    if hostile:  # 500 conflicting files: the todo's first 100 and a count, names escaped
        assert "and 400 more" in body
        assert "file_499" not in body
        assert "<script>" not in body


def test_the_blocked_comment_links_the_previous_follow_up() -> None:
    previous = data.followup().model_copy(
        update={"id": "pr-42-integration-blocked-3f5e2a9", "reason": "checks_failed"}
    )
    followup = data.followup()
    decided = plan(
        blocked_item(followup.id), Facts(followup=followup, previous_followup=previous),
        links=LINKS,
    )  # fmt: skip
    assert decided.comment is not None
    assert (
        "| Previous follow-up | [`pr-42-integration-blocked-3f5e2a9`]"
        "(https://mergebot.example.com/repos/acme/widgets/followups/pr-42-integration-blocked-3f5e2a9)"
        ": checks failed at `3f5e2a9` |"
    ) in decided.comment[1]


def test_a_block_not_yet_in_the_log_is_told_from_the_queue_item() -> None:
    item = blocked_item(
        "pr-42-integration-blocked-3f5e2a9", reason="merge_conflict", details={"files": ["a.txt"]}
    )
    decided = plan(item, Facts(), links=LINKS)
    assert decided.comment is not None
    body = decided.comment[1]
    assert body.startswith("# ⛔ acme/widgets pr-42: merge conflict")
    assert "| Follow-up | `pr-42-integration-blocked-3f5e2a9` (open) |" in body
    assert "- `a.txt`" in body
    assert decided.report.title == "Blocked: merge conflict"


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


def test_integrating_in_a_batch_names_the_candidates_checked_together() -> None:
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.INTEGRATING, base="main", integration_sha=MERGED,
        checks=[], car=1, stacked_on="base", batch=["pr-6", "pr-7"],
    )  # fmt: skip
    assert "It is in one batch of 2 candidates checked together: `pr-6`, `pr-7`." in (
        report.summary_markdown
    )


def test_a_waiting_candidate_says_the_queue_is_frozen_and_why() -> None:
    frozen = {"kind": "frozen", "reason": "release 2.4", "by": "dana", "until": "2026-12-02T18:00"}
    report = render_report(
        "acme/w", "pr-7", SHA, ReportState.QUEUED, base="main", position=1, frozen=frozen
    )
    assert report.title == "Queued at position 1 for main (main is frozen)"
    assert report.summary_markdown.endswith(
        "**`main` is frozen:** release 2\\.4 (by dana, until 2026\\-12\\-02T18:00). The candidate "
        "is still checked; `main` moves once the freeze ends."
    )
