"""Texts mergebot shows on GitHub — check run titles, summaries and texts, PR comments, command
replies — rendered from the templates under `templates/github/` (and the follow-up todo under
`templates/followup/`) by the shared renderer (`mergebot.render`): one path, one set of filters.

A report template sets `title` (one line) and renders the Markdown summary as its body; a blocked
candidate's report also carries the follow-up todo as the check run's `text`, and its comment *is*
that todo, so the two GitHub surfaces cannot disagree. The hidden marker that lets a comment be
edited instead of repeated is added by the adapter, not here (room for it is left).

Every text passes one final guard, `fit`, at GitHub's limits (a comment over 65,536 characters or a
check run summary or text over 65,535 is refused with a 422, and the person who must act sees
nothing): a text that is too long is cut at a line, an open code fence is closed, and a visible
"… truncated, N more characters" links to the full follow-up on the dashboard.
"""

from __future__ import annotations

import re
from typing import Any

from mergebot.forge.base import CommentKind, Report, ReportState
from mergebot.render import render_todo, renderer, tidy

MAX_TITLE = 255
MAX_SUMMARY = 65_535
MAX_TEXT = 65_535
MAX_COMMENT = 65_536
# The adapter appends "\n\n<!-- mergebot:<kind> -->" to a comment body.
MARKER_ROOM = 64
TODO_BODY_TEMPLATE = "followup/_todo_body.md.j2"

_FENCE = re.compile(r"^( *)(`{3,}|~{3,})")


def _open_fence(text: str) -> str | None:
    """The line that closes the fenced code block `text` ends inside of, if it does (CommonMark:
    a fence closes with a run of the same character at least as long as the one that opened)."""
    opened: tuple[str, str] | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        indent, run = match.groups()
        if opened is None:
            opened = (indent, run)
        elif (
            run[0] == opened[1][0]
            and len(run) >= len(opened[1])
            and not line[match.end() :].strip()
        ):
            opened = None
    return None if opened is None else opened[0] + opened[1]


def fit(text: str, limit: int, *, full_url: str | None = None) -> str:
    """`text` within `limit` characters: unchanged when it fits; otherwise cut at the end of a
    line, any open code fence closed, and a visible note of how much was cut, linking to the
    full text (the follow-up's page) when there is one."""
    if len(text) <= limit:
        return text
    link = f" Read it all on [the follow-up's page]({full_url})." if full_url else ""
    budget = limit
    while True:
        note = f"\n\n**… truncated, {len(text) - budget:,} more characters.**{link}"
        head = text[: max(budget - len(note), 0)]
        newline = head.rfind("\n")
        if newline > len(head) // 2:
            head = head[:newline]
        fence = _open_fence(head)
        closing = f"\n{fence}" if fence else ""
        note = f"\n\n**… truncated, {len(text) - len(head):,} more characters.**{link}"
        out = head + closing + note
        if len(out) <= limit:
            return out
        budget -= len(out) - limit


def fit_line(text: str, limit: int) -> str:
    """A one-line text (a check run title) within `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def render_report(
    repo: str,
    slug: str,
    sha: str,
    state: ReportState,
    *,
    details_url: str | None = None,
    templates_dir: str | None = None,
    **context: Any,
) -> Report:
    """The check run / commit status content for a candidate in `state`. A blocked candidate's
    `followup` (the follow-up todo's context, `notify.view.followup_context`) also becomes the
    check run's text."""
    values = {"repo": repo, "slug": slug, "sha": sha, "details_url": details_url, **context}
    texts = renderer(templates_dir)
    body, exports = texts.render_parts(f"github/report_{state.value}.md.j2", values)
    followup = context.get("followup")
    full_url = followup["followup_url"] if followup else details_url
    text = None
    if followup:
        text = fit(tidy(texts.render(TODO_BODY_TEMPLATE, followup)), MAX_TEXT, full_url=full_url)
    return Report(
        repo=repo,
        slug=slug,
        sha=sha,
        state=state,
        title=fit_line(exports.get("title", state.value), MAX_TITLE),
        summary_markdown=fit(tidy(body), MAX_SUMMARY, full_url=full_url),
        details_url=details_url,
        text_markdown=text,
    )


def render_todo_comment(followup: dict[str, Any], *, templates_dir: str | None = None) -> str:
    """The blocked comment: the follow-up todo itself, within a comment's limit."""
    body = render_todo(followup, templates_dir=templates_dir)
    return fit(body, MAX_COMMENT - MARKER_ROOM, full_url=followup["followup_url"])


def render_comment(kind: CommentKind, *, templates_dir: str | None = None, **context: Any) -> str:
    body = renderer(templates_dir).render(f"github/comment_{kind.value}.md.j2", context)
    return fit(tidy(body), MAX_COMMENT - MARKER_ROOM)


def render_reply(name: str, *, templates_dir: str | None = None, **context: Any) -> str:
    """A reply to a `/mergebot …` command; ends with exactly one newline."""
    body = renderer(templates_dir).render(f"github/{name}.md.j2", context)
    return fit(body.rstrip("\n"), MAX_COMMENT - MARKER_ROOM) + "\n"
