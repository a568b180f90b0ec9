"""The replies mergebot posts to `/mergebot …` commands, from `templates/github/<name>.md.j2`,
rendered by the shared renderer (`mergebot.render`: StrictUndefined, the operator's
`templates_dir` first). A reply body ends with exactly one newline.
"""

from __future__ import annotations

from typing import Any

from mergebot.render import renderer


def render(name: str, *, templates_dir: str | None = None, **context: Any) -> str:
    body = renderer(templates_dir).render(f"github/{name}.md.j2", context)
    return body.rstrip("\n") + "\n"
