"""`issue_comment` → a command request (not an event: it is acted on later, by a worker).

Only a newly created comment on a pull request can command: an edited comment is not executed
again, a deleted one does nothing, comments by bots (mergebot's own replies included) are ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mergebot.github.commands import CommandRequest, find_command
from mergebot.github.payloads import IssueCommentEvent
from mergebot.github.translated import Translation, TranslationError, parse, repo_of

EVENT = "issue_comment"


def translate_issue_comment(payload: dict[str, Any]) -> Translation:
    event = parse(IssueCommentEvent, payload, EVENT)
    repo = repo_of(event.repository.full_name, EVENT)
    if event.action != "created":
        return Translation.ignore(
            repo, f"comment {event.action}: only a new comment is read for commands"
        )
    if event.issue.pull_request is None:
        return Translation.ignore(repo, "comment on an issue, not on a pull request")
    author = event.comment.user
    if author.type.lower() == "bot":
        return Translation.ignore(repo, "comment written by a bot")
    parsed = find_command(event.comment.body or "")
    if parsed is None:
        return Translation.ignore(repo, "comment has no /mergebot command")
    try:
        request = CommandRequest(
            repo=repo,
            number=event.issue.number,
            comment_id=event.comment.id,
            command=parsed.command,
            line=parsed.line,
            argument=parsed.argument,
            author=author.login,
            created_at=event.comment.created_at,
            html_url=event.comment.html_url,
        )
    except ValidationError as exc:
        raise TranslationError(EVENT, [str(e["msg"]) for e in exc.errors()]) from None
    return Translation(repo, command=request)
