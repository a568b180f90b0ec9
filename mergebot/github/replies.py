"""The replies mergebot posts to `/mergebot …` commands, from `templates/github/<name>.md.j2`,
rendered by the shared renderer (`mergebot.render`: StrictUndefined, the operator's
`templates_dir` first). A reply body ends with exactly one newline.
"""

from __future__ import annotations

from typing import Any

from mergebot.forge.render import render_reply


def render(name: str, *, templates_dir: str | None = None, **context: Any) -> str:
    return render_reply(name, templates_dir=templates_dir, **context)
