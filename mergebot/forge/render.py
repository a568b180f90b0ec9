"""Texts mergebot shows on GitHub — check run titles and summaries, PR comments — rendered from
the templates under `templates/github/` by the shared renderer (`mergebot.render`).

A report template sets `title` (one line) and renders the Markdown summary as its body; a comment
template renders the comment body. The hidden marker that lets a comment be edited instead of
repeated is added by the adapter, not here. This module adds only what GitHub needs on top:
blank-line tidying and GitHub's length limits.
"""

from __future__ import annotations

import re
from typing import Any

from mergebot.forge.base import CommentKind, Report, ReportState
from mergebot.render import renderer

MAX_TITLE = 255
MAX_SUMMARY = 65_000  # GitHub refuses check run summaries over 65,535 characters

_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Optional sections leave runs of blank lines; Markdown needs at most one."""
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    """The check run / commit status content for a candidate in `state`."""
    values = {"repo": repo, "slug": slug, "sha": sha, "details_url": details_url, **context}
    body, exports = renderer(templates_dir).render_parts(
        f"github/report_{state.value}.md.j2", values
    )
    title = " ".join(exports.get("title", state.value).split())
    return Report(
        repo=repo,
        slug=slug,
        sha=sha,
        state=state,
        title=_truncate(title, MAX_TITLE),
        summary_markdown=_truncate(tidy(body), MAX_SUMMARY),
        details_url=details_url,
    )


def render_comment(kind: CommentKind, *, templates_dir: str | None = None, **context: Any) -> str:
    body = renderer(templates_dir).render(f"github/comment_{kind.value}.md.j2", context)
    return tidy(body)
