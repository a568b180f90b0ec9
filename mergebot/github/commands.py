"""`/mergebot …` comment commands (SPEC §7): finding one in a comment, and the durable request.

A command is a line of its own, `/mergebot <word>`, case-insensitive, outside quotes, code
blocks and HTML comments. The first command line of a comment is the one acted on: one action per
comment. A `/mergebot` line with an unknown word (or extra words) asks for the help reply.

Commands with an argument: `/mergebot merge p=<n>` and `/mergebot priority <n>` (the argument is
kept as written and judged by the worker, so a bad value gets a refusal naming it, not the
help), and `/mergebot freeze <reason>` (the rest of the line is the reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from mergebot.ids import REPO_PATTERN


class Command(StrEnum):
    MERGE = "merge"
    RESUME = "resume"
    CANCEL = "cancel"
    STATUS = "status"
    PRIORITY = "priority"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    HELP = "help"  # also every unknown word


@dataclass(frozen=True)
class ParsedCommand:
    command: Command
    line: str  # the command line as written (trimmed, at most 200 characters)
    # `merge p=<n>`: n; `priority <n>`: n; `freeze <reason>`: the reason (as written).
    argument: str = ""


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HTML_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.S)
_COMMAND = re.compile(r"^ {0,3}/mergebot(?:[ \t]+(.*))?$", re.I)
_MAX_LINE = 200


def find_command(body: str) -> ParsedCommand | None:
    """The first command of a comment body, or None when it has none."""
    fence: str | None = None
    for raw in _HTML_COMMENT.sub("", body).splitlines():
        line = raw.rstrip()
        opener = _FENCE.match(line)
        if fence is not None:
            # A fence closes with at least as many of the same character and nothing after.
            closing = opener.group(1) if opener else ""
            if closing.startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if opener:
            fence = opener.group(1)
            continue
        if line.startswith(("    ", "\t")) or line.lstrip().startswith(">"):
            continue  # an indented code block or a quote: someone showing a command, not giving it
        match = _COMMAND.match(line)
        if match is None:
            continue
        return _parse_words(match.group(1) or "", line.strip()[:_MAX_LINE])
    return None


_ACTIONS = frozenset(
    {Command.MERGE, Command.RESUME, Command.CANCEL, Command.STATUS, Command.UNFREEZE}
)


def _parse_words(rest: str, text: str) -> ParsedCommand:
    words = rest.split()
    first = words[0].lower() if words else ""
    if len(words) == 1 and first in _ACTIONS:
        return ParsedCommand(Command(first), text)
    if first == Command.MERGE and len(words) == 2 and words[1].lower().startswith("p="):
        return ParsedCommand(Command.MERGE, text, words[1][2:][:_MAX_ARGUMENT])
    if first == Command.PRIORITY and len(words) == 2:
        return ParsedCommand(Command.PRIORITY, text, words[1][:_MAX_ARGUMENT])
    if first == Command.FREEZE:
        reason = rest.strip()[len(words[0]) :].strip()
        return ParsedCommand(Command.FREEZE, text, reason[:_MAX_ARGUMENT])
    return ParsedCommand(Command.HELP, text)


_MAX_ARGUMENT = 200

Login = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class CommandRequest(BaseModel):
    """A command from a pull-request comment, stored durably until a worker acts on it.

    Everything the worker needs is here, because the comment itself is never fetched again:
    what was asked, by whom, on which pull request, and when (the time the events will carry).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: Annotated[str, StringConstraints(pattern=REPO_PATTERN)]
    number: int
    comment_id: int
    command: Command
    line: str
    argument: Annotated[str, StringConstraints(max_length=_MAX_ARGUMENT)] = ""
    author: Login
    created_at: AwareDatetime
    html_url: str | None = None

    @property
    def slug(self) -> str:
        return f"pr-{self.number}"

    @property
    def dedupe_key(self) -> str:
        """One action per comment: the comment id, whichever delivery or job brought it."""
        return f"{self.repo}#comment-{self.comment_id}"
