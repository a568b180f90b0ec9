"""The reply comments, rendered from templates/github with fixed inputs, against golden files.

Set UPDATE_GOLDEN=1 to rewrite the golden files after an intended wording change.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest

from mergebot.forge.base import CommentKind, Permission
from mergebot.github.command_worker import Outcome, plan
from mergebot.github.commands import Command, CommandRequest
from mergebot.github.replies import render
from mergebot.github.summary import SlugSummary

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "golden"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def request(
    command: Command, line: str, author: str = "octocat", argument: str = ""
) -> CommandRequest:
    return CommandRequest(
        argument=argument,
        repo="acme/widgets",
        number=7,
        comment_id=1,
        command=command,
        line=line,
        author=author,
        created_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    )


def head() -> SlugSummary:
    return SlugSummary(
        "pr-7",
        branch="feature/x",
        sha=SHA,
        ready_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        approvals={"alice": SHA, "bob": "1" * 40},
    )


def blocked() -> SlugSummary:
    summary = head()
    summary.outcome, summary.reason = "blocked", "checks_failed"
    summary.followup_id = "pr-7-integration-blocked-ec26c3e"
    return summary


def queued() -> SlugSummary:
    summary = head()
    summary.queue_status, summary.queue_position = "queued", 2
    return summary


CASES: dict[str, tuple[CommandRequest, Permission, SlugSummary]] = {
    "help": (request(Command.HELP, "/mergebot rebase"), Permission.WRITE, head()),
    "refused-permission": (request(Command.MERGE, "/mergebot merge"), Permission.READ, head()),
    "refused-no-candidate": (
        request(Command.MERGE, "/mergebot merge"),
        Permission.ADMIN,
        SlugSummary("pr-7"),
    ),
    "refused-bad-priority": (
        request(Command.PRIORITY, "/mergebot priority high", argument="high"),
        Permission.WRITE,
        head(),
    ),
    "refused-freeze-permission": (
        request(Command.FREEZE, "/mergebot freeze release", argument="release"),
        Permission.WRITE,
        head(),
    ),
    "status-waiting": (request(Command.STATUS, "/mergebot status"), Permission.MAINTAIN, head()),
    "status-blocked": (request(Command.STATUS, "/mergebot status"), Permission.WRITE, blocked()),
    "status-queued": (request(Command.STATUS, "/mergebot status"), Permission.WRITE, queued()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reply_matches_its_golden_file(name: str) -> None:
    req, permission, summary = CASES[name]
    decision = plan(req, permission, summary, base="main")
    assert decision.events == ()
    assert decision.reply is not None
    body = render(decision.reply.template, **decision.reply.context)
    golden = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body)
    assert body == golden.read_text()


def test_refusal_and_help_kinds() -> None:
    refused = plan(*CASES["refused-permission"][:2], head(), base="main")
    assert (refused.outcome, refused.reply and refused.reply.kind) == (
        Outcome.REFUSED,
        CommentKind.REFUSED,
    )
    helped = plan(*CASES["help"][:2], head(), base="main")
    assert helped.reply is not None
    assert helped.reply.kind is CommentKind.HELP


def test_a_missing_template_value_fails_loudly() -> None:
    context: dict[str, Any] = {"line": "/mergebot x", "base": "main"}  # no repo
    with pytest.raises(jinja2.UndefinedError):
        render("help", **context)


def test_a_backtick_in_the_command_line_cannot_break_out_of_the_code_span() -> None:
    body = render("help", line="/mergebot `@everyone`", base="main", repo="acme/widgets")
    assert "`/mergebot '@everyone'`" in body


def test_an_operator_template_overrides_the_default(tmp_path: Path) -> None:
    (tmp_path / "github").mkdir()
    (tmp_path / "github" / "help.md.j2").write_text("custom help for {{ repo }}\n")
    body = render("help", templates_dir=str(tmp_path), line="x", base="main", repo="acme/w")
    assert body == "custom help for acme/w\n"
