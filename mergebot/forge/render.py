"""Texts mergebot shows on GitHub — check run titles and summaries, PR comments — rendered from
jinja2 templates under `templates/github/` (StrictUndefined: a missing value is a bug, not a blank).

A report template sets `title` (one line) and renders the Markdown summary as its body; a comment
template renders the comment body. The hidden marker that lets a comment be edited instead of
repeated is added by the adapter, not here.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from mergebot.forge.base import CommentKind, Report, ReportState

MAX_TITLE = 255
MAX_SUMMARY = 65_000  # GitHub refuses check run summaries over 65,535 characters


def template_dirs(override: str | None = None) -> list[Path]:
    """An operator's `templates_dir` first (to change wording), then the bundled templates."""
    here = Path(__file__).resolve().parent.parent
    dirs = [Path(override)] if override else []
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            dirs.append(candidate)
    return dirs


@cache
def environment(override: str | None = None) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader([str(d) for d in template_dirs(override)])
    env = jinja2.Environment(  # noqa: S701 - Markdown for GitHub, not HTML
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = lambda sha: str(sha)[:7]
    return env


_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
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
    template = environment(templates_dir).get_template(f"github/report_{state.value}.md.j2")
    values = {"repo": repo, "slug": slug, "sha": sha, "details_url": details_url, **context}
    module = template.make_module(values)
    title = " ".join(str(getattr(module, "title", state.value)).split())
    summary = _tidy(str(module))
    return Report(
        repo=repo,
        slug=slug,
        sha=sha,
        state=state,
        title=_truncate(title, MAX_TITLE),
        summary_markdown=_truncate(summary, MAX_SUMMARY),
        details_url=details_url,
    )


def render_comment(kind: CommentKind, *, templates_dir: str | None = None, **context: Any) -> str:
    template = environment(templates_dir).get_template(f"github/comment_{kind.value}.md.j2")
    return _tidy(template.render(**context))
