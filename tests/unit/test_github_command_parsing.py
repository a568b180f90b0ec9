"""Finding a `/mergebot` command in a comment: own line, any case, never in quotes or code."""

from __future__ import annotations

import pytest

from mergebot.github.commands import Command, ParsedCommand, find_command


@pytest.mark.parametrize(
    ("body", "command"),
    [
        ("/mergebot merge", Command.MERGE),
        ("/MergeBot MERGE", Command.MERGE),
        ("Looks good.\r\n\r\n/mergebot resume  \r\n", Command.RESUME),
        ("   /mergebot cancel", Command.CANCEL),
        ("/mergebot\tstatus", Command.STATUS),
        ("```\n/mergebot merge\n```\n/mergebot status", Command.STATUS),
    ],
)
def test_commands_are_found(body: str, command: Command) -> None:
    found = find_command(body)
    assert found is not None
    assert found.command is command


def test_the_first_command_of_a_comment_is_the_one_acted_on() -> None:
    assert find_command("/mergebot cancel\n/mergebot merge") == ParsedCommand(
        Command.CANCEL, "/mergebot cancel"
    )


@pytest.mark.parametrize(
    "body",
    [
        "> /mergebot merge",
        ">> quoted twice\n> /mergebot merge",
        "```\n/mergebot merge\n```",
        "~~~~\n/mergebot merge\n~~~\nstill code\n",
        "```text\nsome\n/mergebot merge\n```",
        "    /mergebot merge",
        "\t/mergebot merge",
        "please run `/mergebot merge`",
        "- /mergebot merge",
        "<!-- /mergebot merge -->",
        "<!--\n/mergebot merge\n-->",
        "/mergebotmerge",
        "I typed /mergebot merge in the middle",
        "",
    ],
)
def test_quoted_code_and_inline_mentions_are_not_commands(body: str) -> None:
    assert find_command(body) is None


@pytest.mark.parametrize(
    "body", ["/mergebot", "/mergebot rebase", "/mergebot merge now please", "/MERGEBOT help"]
)
def test_unknown_or_malformed_commands_ask_for_help(body: str) -> None:
    found = find_command(body)
    assert found is not None
    assert found.command is Command.HELP
    assert found.line == body.strip()


def test_the_recorded_line_is_bounded() -> None:
    found = find_command("/mergebot " + "x" * 5000)
    assert found is not None
    assert len(found.line) == 200
