"""Rendering the texts mergebot posts on pull requests, from `templates/github/*.md.j2`.

Jinja2 with StrictUndefined: a template naming a value the code did not pass fails loudly instead
of posting a comment with a hole in it. An operator's `templates_dir` (server config) overrides
any template by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2


def default_templates_dir() -> Path:
    """Installed wheels carry the templates inside the package; a source tree has them at root."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


def environment(templates_dir: str | None = None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(default_templates_dir()))
    # Markdown for GitHub comments, not HTML: escaping would mangle it; values are put in code
    # spans (the `code` filter) or are logins and shas, which cannot carry markup.
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def code(text: str) -> str:
    """Inline code that cannot be broken out of (backticks and newlines removed)."""
    return "`" + text.replace("`", "'").replace("\n", " ").strip() + "`"


def render(name: str, *, templates_dir: str | None = None, **context: Any) -> str:
    env = environment(templates_dir)
    env.filters["code"] = code
    return env.get_template(f"github/{name}.md.j2").render(**context)
