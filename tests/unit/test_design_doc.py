"""docs/design.md draws the queue's state machine; every status and transition must be in it."""

from __future__ import annotations

import re
from pathlib import Path

from mergebot.queue import TRANSITIONS, Status

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def _mermaid() -> str:
    text = DESIGN.read_text()
    match = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert match, "docs/design.md has no mermaid block"
    return match.group(1)


def test_every_status_is_drawn() -> None:
    drawing = _mermaid()
    missing = [s.value for s in Status if not re.search(rf"\b{s.value}\b", drawing)]
    assert missing == []


def test_every_allowed_transition_is_drawn_and_nothing_else() -> None:
    drawn = set(re.findall(r"^\s*(\w+) --> (\w+)", _mermaid(), re.M))
    drawn = {(a, b) for a, b in drawn if "[*]" not in (a, b)}
    allowed = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert drawn == allowed
