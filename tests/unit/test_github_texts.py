"""Every text mergebot shows on GitHub (check run title, summary and text; comments; command
replies), rendered with realistic and with hostile data (`tests/golden/hostile.json`) and compared
with reviewed outputs in tests/golden/github/; and every surface, GitHub and chat, rendered for a
block with 20 failing checks of 6,000-character outputs and 300 conflicting files, within each
platform's limits. Regenerate the goldens after a deliberate change with
`MERGEBOT_UPDATE_GOLDENS=1 python -m pytest tests/unit/test_github_texts.py` and review the diff."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from mergebot.config import NotifyEvent
from mergebot.followups import Followup
from mergebot.forge.base import CommentKind, Report, ReportState
from mergebot.forge.github import marker
from mergebot.forge.render import (
    MAX_COMMENT,
    MAX_SUMMARY,
    MAX_TEXT,
    MAX_TITLE,
    fit,
    render_comment,
    render_report,
    render_todo_comment,
)
from mergebot.github.replies import render as render_reply
from mergebot.github.reporter import Facts, plan
from mergebot.github.summary import SlugSummary
from mergebot.notify.view import (
    CHAT,
    JSON_FORMATS,
    TIGHT,
    Format,
    Limits,
    Links,
    fits,
    followup_context,
    notification_context,
    template_name,
)
from mergebot.queue import QueueItem, Status
from mergebot.render import Renderer
from tests import notify_data as data

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "github"
UPDATE = os.environ.get("MERGEBOT_UPDATE_GOLDENS") == "1"
LINKS = Links("https://mergebot.example.com", "https://github.com")
H = data.HOSTILE
SHA = data.SHA
MERGED = data.MAIN_AFTER


def _compare(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; run with MERGEBOT_UPDATE_GOLDENS=1"
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from the reviewed output"


def _shown(report: Report) -> str:
    """A check run as GitHub shows it: title, summary, then text."""
    parts = [f"title: {report.title}", "", report.summary_markdown]
    if report.text_markdown:
        parts += ["", "---- text ----", "", report.text_markdown]
    return "\n".join(parts) + "\n"


def _report_context(state: ReportState, hostile: bool) -> dict[str, Any]:
    base = H["branch"] if hostile else "main"
    checks = [
        {"name": "build", "state": "success", "url": "https://ci.example.com/1"},
        {"name": "test", "state": "pending", "url": None},
    ]
    if hostile:
        checks = [
            {"name": H["check_name"], "state": "failure <b>", "url": H["check_url"]},
            {"name": H["command"], "state": "pending", "url": None},
        ]
    followup = data.followup(hostile=hostile)
    contexts: dict[ReportState, dict[str, Any]] = {
        ReportState.QUEUED: {"position": 3},
        ReportState.INTEGRATING: {"integration_sha": data.INTEGRATION_SHA, "checks": checks},
        ReportState.BLOCKED: {"followup": followup_context(followup, LINKS)},
        ReportState.MERGED: {"merged_sha": MERGED},
        ReportState.WOULD_MERGE: {"merged_sha": MERGED},
        ReportState.SUPERSEDED: {"newer_sha": data.OLD_SHA},
        ReportState.CANCELLED: {"reason": H["message"] if hostile else "candidate_withdrawn"},
    }
    return {"base": base, **contexts[state]}


@pytest.mark.parametrize("hostile", [False, True], ids=["realistic", "hostile"])
@pytest.mark.parametrize("state", list(ReportState))
def test_check_run_matches_golden(state: ReportState, hostile: bool) -> None:
    scenario = "hostile" if hostile else "realistic"
    report = render_report(
        data.REPO, "pr-42", SHA, state, details_url="https://mergebot.example.com/repos/x#pr-42",
        **_report_context(state, hostile),
    )  # fmt: skip
    _compare(f"report_{state}-{scenario}.md", _shown(report))


def test_config_error_check_run_escapes_the_repo_file() -> None:
    report = render_report(
        data.REPO, "pr-42", SHA, ReportState.BLOCKED, base="main", followup=None,
        file=".github/mergebot.toml",
        problems=[{"key": H["config_key"], "reason": H["config_reason"]}],
    )  # fmt: skip
    _compare("report_blocked-config-error-hostile.md", _shown(report))
    assert not re.search(r"(?<!\\)<img", report.summary_markdown)
    assert "@everyone" not in report.summary_markdown


def _comments(hostile: bool) -> dict[str, str]:
    user = H["reviewer"] if hostile else "eve"
    base = H["branch"] if hostile else "main"
    key = H["config_key"] if hostile else "grace_seconds"
    reason = H["config_reason"] if hostile else "Input should be a valid number"
    return {
        "comment_refused": render_comment(
            CommentKind.REFUSED, user=user, command="merge", repo=data.REPO, permission="read"
        ),
        "comment_config_error": render_comment(
            CommentKind.CONFIG_ERROR,
            file=".github/mergebot.toml",
            base=base,
            problems=[{"key": key, "reason": reason}],
        ),
        "comment_landed": render_comment(CommentKind.LANDED, base=base, merged_sha=MERGED),
        "comment_blocked": render_todo_comment(
            followup_context(data.followup(hostile=hostile), LINKS)
        ),
    }


def _replies(hostile: bool) -> dict[str, str]:
    line = "/mergebot " + (H["message"] if hostile else "mrege")
    author = H["reviewer"] if hostile else "eve"
    base = H["branch"] if hostile else "main"
    summary = {
        "sha": SHA, "branch": H["branch"] if hostile else "feature/x",
        "head_approvers": [H["reviewer"]] if hostile else ["alice"],
        "queue_status": "blocked", "queue_position": None,
        "reason": H["message"] if hostile else "merge_conflict",
        "followup_id": "pr-42-integration-blocked-3f5e2a9", "withdrawn": None,
        "outcome": None, "main_after": None,
    }  # fmt: skip
    return {
        "help": render_reply("help", line=line, base=base, repo=data.REPO),
        "refused": render_reply(
            "refused",
            reason="permission",
            author=author,
            line=line,
            repo=data.REPO,
            permission="read",
            base=base,
            withdrawn=None,
        ),
        "status": render_reply("status", slug="pr-42", author=author, base=base, summary=summary),
        "resume_needs_approval": render_reply(
            "resume_needs_approval",
            author=author,
            summary=SlugSummary(
                "pr-42",
                branch="feature/x",
                sha=SHA,
                approvals={H["reviewer"] if hostile else "alice": data.OLD_SHA},
            ),
        ),
    }


@pytest.mark.parametrize("hostile", [False, True], ids=["realistic", "hostile"])
def test_comments_and_replies_match_golden(hostile: bool) -> None:
    scenario = "hostile" if hostile else "realistic"
    for name, body in {**_comments(hostile), **_replies(hostile)}.items():
        _compare(f"{name}-{scenario}.md", body.rstrip("\n") + "\n")


def test_every_github_template_is_covered() -> None:
    names = set(Renderer().names("github/"))
    covered = {f"github/report_{s}.md.j2" for s in ReportState}
    covered |= {f"github/{n}.md.j2" for n in _comments(False) if n != "comment_blocked"}
    covered |= {f"github/{n}.md.j2" for n in _replies(False)}
    assert names == covered


def _unfenced(text: str) -> str:
    """The text outside fenced code blocks and code spans (where Markdown is not read)."""
    text = re.sub(r"(?ms)^( *)(`{3,})[a-z]*\n.*?^\1\2$", "", text)
    return re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", text)


def test_hostile_names_stay_text_on_every_github_surface() -> None:
    report = render_report(
        data.REPO, "pr-42", SHA, ReportState.BLOCKED, **_report_context(ReportState.BLOCKED, True)
    )
    texts = [report.summary_markdown, report.text_markdown or "", *_comments(True).values()]
    integrating = render_report(
        data.REPO, "pr-42", SHA, ReportState.INTEGRATING,
        **_report_context(ReportState.INTEGRATING, True),
    )  # fmt: skip
    texts.append(integrating.summary_markdown)
    for text in texts:
        outside = _unfenced(text)
        for tag in ("<script>", "<img", "<b>"):
            assert not re.search(r"(?<!\\)" + re.escape(tag), outside), tag
        assert "@everyone" not in outside
        # A check named like a link is not a link: its brackets are escaped.
        assert "](y)" not in outside
    # The check named `[x](y)`-like stays one escaped table cell.
    assert "tests \\<b\\>\\&\\</b\\> \\`lint\\`" in integrating.summary_markdown


# -- the limits: 20 failing checks with 6,000-character outputs and 300 conflicting files ------


def _big_details() -> dict[str, Any]:
    output = "\n".join(f"line {i:04d} " + "x" * 60 + " ```" for i in range(90))[:6000]
    assert len(output) == 6000
    checks = [
        {
            "name": f"ci / matrix [{i}](http://evil.example) `py3.{i}`",
            "state": "failure",
            "url": f"https://ci.example.com/runs/{i}",
            "summary": H["message"],
            "output_tail": output,
            "kind": "required" if i % 2 else "command",
            "exit_code": 1,
        }
        for i in range(20)
    ]
    files = [f"src/{H['files'][i % 4]}/deep/path/number_{i:03d}.py" for i in range(300)]
    return {
        "files": files,
        "checks": checks,
        "message": H["message"] * 50,
        "base_sha": data.BASE_SHA,
        "integration_sha": data.INTEGRATION_SHA,
    }


def _big_followup() -> Followup:
    return data.followup(hostile=True).model_copy(update={"details": _big_details()})


def _fences_balanced(text: str) -> bool:
    opened: str | None = None
    for line in text.split("\n"):
        match = re.match(r"^ *(`{3,})", line)
        if not match:
            continue
        if opened is None:
            opened = match.group(1)
        elif len(match.group(1)) >= len(opened) and not line[match.end() :].strip():
            opened = None
    return opened is None


def test_every_github_surface_keeps_githubs_limits() -> None:
    followup = _big_followup()
    item = QueueItem(
        repo=data.REPO, base="main", slug="pr-42", branch=data.HOSTILE_BRANCH, sha=SHA,
        status=Status.BLOCKED, ready_at=data.AT, updated_at=data.AT, followup_id=followup.id,
    )  # fmt: skip
    decided = plan(item, Facts(followup=followup), links=LINKS)
    report = decided.report
    assert decided.comment is not None
    comment = decided.comment[1] + "\n\n" + marker(CommentKind.BLOCKED)  # as the adapter posts
    assert len(report.title) <= MAX_TITLE
    assert len(report.summary_markdown) <= MAX_SUMMARY
    assert report.text_markdown is not None
    assert len(report.text_markdown) <= MAX_TEXT
    assert len(comment) <= MAX_COMMENT
    for text in (report.summary_markdown, report.text_markdown, comment):
        assert _fences_balanced(text)
    # What the person must do is never the part that is cut.
    assert "### How to resume" in decided.comment[1]
    assert "git merge --no-edit " + data.BASE_SHA in decided.comment[1]


def test_a_text_over_the_limit_is_cut_visibly_with_a_link_to_the_whole() -> None:
    body = "intro\n\n```\n" + "\n".join("y" * 79 for _ in range(1000)) + "\n```\n\nend"
    url = "https://mergebot.example.com/repos/acme/widgets/followups/f-1"
    cut = fit(body, 10_000, full_url=url)
    assert len(cut) <= 10_000
    assert _fences_balanced(cut)
    more = len(body) - len(cut.split("\n```\n\n**…")[0])
    assert (
        f"**… truncated, {more:,} more characters.** Read it all on [the follow-up's page]({url})."
        in cut
    )
    assert fit(body, len(body)) == body


def test_the_adapter_guard_catches_a_body_from_elsewhere() -> None:
    long_body = "z" * 70_000
    out = render_comment(CommentKind.LANDED, base="main", merged_sha="a" * 70_000)
    assert len(out) <= MAX_COMMENT
    assert "truncated" in fit(long_body, MAX_COMMENT)


def _chat(fmt: Format, kind: NotifyEvent = NotifyEvent.BLOCKED) -> str:
    n = data.notification(kind, hostile=True, details=_big_details(), reason="checks_failed")
    followup = None
    if fmt is Format.MARKDOWN:
        followup = followup_context(_big_followup(), LINKS)
    ctx = notification_context(n, data.previous(NotifyEvent.STARTED), LINKS, CHAT,
                               followup=followup)  # fmt: skip
    name = template_name(fmt, kind)
    if fmt in JSON_FORMATS:
        return json.dumps(Renderer().render_json(name, ctx), ensure_ascii=False)
    return Renderer().render(name, ctx)


def test_every_chat_format_keeps_its_limits_with_hostile_data() -> None:
    slack = json.loads(_chat(Format.SLACK))
    assert len(slack["text"]) <= 40_000
    assert len(slack["blocks"]) <= 50
    for block in slack["blocks"]:
        texts = [block["text"]["text"]] if "text" in block else []
        texts += [e["text"] for e in block.get("elements", [])]
        for text in texts:
            assert len(text) <= 3000, "a Block Kit text object holds at most 3,000 characters"
            assert _fences_balanced(text.replace("```", "\n```\n"))
    discord = json.loads(_chat(Format.DISCORD))
    embed = discord["embeds"][0]
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert len(embed["title"]) + len(embed["description"]) <= 6000
    assert len(discord.get("content") or "") <= 2000
    assert len(_chat(Format.TELEGRAM)) <= 4096
    assert len(_chat(Format.PLAIN)) <= 4096
    # The Markdown format carries the follow-up todo: a PR comment's limit.
    assert len(_chat(Format.MARKDOWN)) <= MAX_COMMENT - 64


def test_slack_code_survives_backticks_and_fences() -> None:
    blocks = json.loads(_chat(Format.SLACK))["blocks"]
    text = "\n".join(b["text"]["text"] for b in blocks[1:] if "text" in b)
    # Every ``` in the text opens or closes one of mergebot's own blocks: none comes from data.
    assert text.count("```") % 2 == 0
    assert "``" not in text.replace("```", "")
    # A file name with backticks is one inline code span (its backticks are look-alikes).
    assert "`src/a\u02cbb\u02cb\u02cbc.txt/deep/path/number_002.py`" in text


def test_plain_text_puts_the_output_tail_on_its_own_lines() -> None:
    text = _chat(Format.PLAIN)
    assert re.search(r"— [^\n]*\n\n? *https://ci\.example\.com/runs/1\n", text)
    assert "\n    line " in text  # the tail, indented, starts at a line start


def test_a_chat_message_too_long_for_its_platform_is_rendered_with_shorter_lists() -> None:
    """Ten file names of 200 Markdown characters double in length once escaped for Telegram:
    the notifier renders such a message again with fewer files and checks, and it fits."""
    details = _big_details()
    markup = "_*[]()~`>#+-=|{}.!" * 12
    details["files"] = [markup[:200] + str(i) for i in range(300)]
    details["checks"] = [dict(c, name=markup[:100], summary=markup) for c in details["checks"]]
    n = data.notification(NotifyEvent.BLOCKED, hostile=True, details=details, reason="x")
    assert not fits(Format.TELEGRAM, _chat_body(Format.TELEGRAM, n, CHAT))
    for fmt in (Format.TELEGRAM, Format.DISCORD):
        assert fits(fmt, _chat_body(fmt, n, TIGHT)), fmt


def _chat_body(fmt: Format, n: Any, limits: Limits) -> Any:
    ctx = notification_context(n, data.previous(NotifyEvent.STARTED), LINKS, limits)
    name = template_name(fmt, NotifyEvent.BLOCKED)
    return (
        Renderer().render_json(name, ctx) if fmt in JSON_FORMATS else Renderer().render(name, ctx)
    )
