"""Every notification and follow-up template, rendered with realistic and hostile data, compared
with reviewed expected outputs in tests/golden/. Regenerate after a deliberate template change with
`MERGEBOT_UPDATE_GOLDENS=1 python -m pytest tests/unit/test_templates.py` and review the diff."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest

from mergebot.config import Mode, NotifyEvent
from mergebot.followups import FollowupStatus
from mergebot.notify.view import (
    JSON_FORMATS,
    Format,
    Links,
    followup_context,
    notification_context,
    template_name,
)
from mergebot.render import (
    TODO_TEMPLATE,
    Renderer,
    TemplateError,
    render_todo,
    renderer,
    telegram_escape,
)
from tests import notify_data as data

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("MERGEBOT_UPDATE_GOLDENS") == "1"
LINKS = Links("https://mergebot.example.com", "https://github.com")

PREVIOUS = {
    NotifyEvent.QUEUED: None,
    NotifyEvent.STARTED: NotifyEvent.QUEUED,
    NotifyEvent.BLOCKED: NotifyEvent.STARTED,
    NotifyEvent.RESUMED: NotifyEvent.BLOCKED,
    NotifyEvent.COMPLETED: NotifyEvent.STARTED,
    NotifyEvent.SUPERSEDED: NotifyEvent.BLOCKED,
    NotifyEvent.CANCELLED: NotifyEvent.QUEUED,
    NotifyEvent.FROZEN: None,
    NotifyEvent.UNFROZEN: NotifyEvent.FROZEN,
}


def _context(kind: NotifyEvent, fmt: Format, *, hostile: bool) -> dict[str, Any]:
    prev_kind = PREVIOUS[kind]
    prev = None
    if prev_kind is not None:
        # A resumed candidate usually comes back at a new sha (the fix that was pushed).
        sha = data.OLD_SHA if kind is NotifyEvent.RESUMED else data.SHA
        prev = data.previous(prev_kind, sha)
    followup = None
    if fmt is Format.MARKDOWN and kind in (NotifyEvent.BLOCKED, NotifyEvent.COMPLETED):
        status = FollowupStatus.OPEN if kind is NotifyEvent.BLOCKED else FollowupStatus.RESOLVED
        followup = followup_context(data.followup(hostile=hostile, status=status), LINKS)
    n = data.notification(kind, hostile=hostile)
    return notification_context(n, prev, LINKS, followup=followup)


def _compare(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; run with MERGEBOT_UPDATE_GOLDENS=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs from the reviewed output"


def _render(fmt: Format, kind: NotifyEvent, *, hostile: bool) -> str:
    renderer = Renderer()
    ctx = _context(kind, fmt, hostile=hostile)
    name = template_name(fmt, kind)
    if fmt in JSON_FORMATS:
        return json.dumps(renderer.render_json(name, ctx), indent=2, ensure_ascii=False) + "\n"
    return renderer.render(name, ctx) + "\n"


_EXT = {"slack": "json", "discord": "json", "telegram": "md2", "plain": "txt", "markdown": "md"}


@pytest.mark.parametrize("hostile", [False, True], ids=["realistic", "hostile"])
@pytest.mark.parametrize("kind", list(NotifyEvent))
@pytest.mark.parametrize("fmt", list(Format))
def test_notification_template_matches_golden(
    fmt: Format, kind: NotifyEvent, hostile: bool
) -> None:
    scenario = "hostile" if hostile else "realistic"
    actual = _render(fmt, kind, hostile=hostile)
    _compare(GOLDEN / "notify" / str(fmt) / f"{kind}-{scenario}.{_EXT[fmt]}", actual)


@pytest.mark.parametrize("status", list(FollowupStatus))
@pytest.mark.parametrize("hostile", [False, True], ids=["realistic", "hostile"])
def test_followup_todo_matches_golden(hostile: bool, status: FollowupStatus) -> None:
    ctx = followup_context(data.followup(hostile=hostile, status=status), LINKS)
    actual = render_todo(ctx) + "\n"
    scenario = "hostile" if hostile else "realistic"
    _compare(GOLDEN / "followup" / f"todo-{scenario}-{status}.md", actual)


def test_every_shipped_notification_template_is_covered() -> None:
    names = set(Renderer().names("notify/"))
    covered = {template_name(f, k) for f in Format for k in NotifyEvent}
    assert names == covered


# -- properties the goldens must keep (so a regenerated golden cannot quietly break them) ---------


def _blocked(fmt: Format) -> str:
    return _render(fmt, NotifyEvent.BLOCKED, hostile=True)


def test_long_file_lists_are_cut_with_a_count_of_the_rest() -> None:
    for fmt in Format:
        text = _blocked(fmt)
        if fmt is Format.MARKDOWN:
            assert "and 400 more" in text  # the todo shows 100 of 500
        else:
            assert "and 490 more" in text, fmt  # chat shows 10 of 500
        assert "file_499" not in text


def _markdown_v2_markup(text: str) -> list[str]:
    """The unescaped special characters of a MarkdownV2 text outside code, pre and link targets:
    a tokenizer following https://core.telegram.org/bots/api#markdownv2-style."""
    found: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if text.startswith("```", i):
            end = text.index("```", i + 3)
            assert "`" not in text[i + 3 : end].replace("\\`", ""), "unescaped ` in pre"
            i = end + 3
            continue
        if ch == "`":
            j = i + 1
            while text[j] != "`":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if text.startswith("](", i):
            found.append("]")
            j = i + 2
            while text[j] != ")":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if ch in "_*[]()~>#+-=|{}.!":
            found.append(ch)
        i += 1
    return found


def test_telegram_hostile_text_is_escaped_outside_entities() -> None:
    for kind in NotifyEvent:
        text = _render(Format.TELEGRAM, kind, hostile=True)
        assert len(text) <= 4096
        markup = _markdown_v2_markup(text)
        # Only our own bold/italic/link markup is left unescaped, and it is balanced.
        assert set(markup) <= {"*", "_", "[", "]"}, (kind, markup)
        assert markup.count("*") % 2 == 0
        assert markup.count("_") % 2 == 0
        assert markup.count("[") == markup.count("]")
    assert telegram_escape(data.HOSTILE_MESSAGE) in _blocked(Format.TELEGRAM)


def test_slack_hostile_text_cannot_mention_or_link() -> None:
    message = json.loads(_blocked(Format.SLACK))
    texts = [message["text"]] + [
        b["text"]["text"] for b in message["blocks"] if b["type"] == "section"
    ]
    for text in texts:
        assert "<!channel>" not in text
        assert "<script>" not in text
        assert len(text) <= 3000
    assert "&lt;!channel&gt;" in texts[-1]
    assert len(message["blocks"]) <= 50


def test_discord_hostile_text_cannot_mention_and_fits() -> None:
    message = json.loads(_blocked(Format.DISCORD))
    embed = message["embeds"][0]
    # Mentions are off in the request (allowed_mentions) and broken up in text outside code.
    assert "@everyone" not in re.sub(r"`[^`]*`", "", embed["description"])
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096


def test_markdown_hostile_text_stays_text() -> None:
    text = _blocked(Format.MARKDOWN)
    assert "<script>" not in text
    assert "<img" not in text.replace("`src/<img src=x onerror=alert(1)>.py`", "")
    # Fenced blocks (the shell commands) and code spans do not mention.
    unfenced = re.sub(r"(?ms)^( *)(`{3,})sh\n.*?^\1\2$", "", text)
    assert "@everyone" not in re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", unfenced)
    # The file whose name holds backticks is still one code span.
    assert "```a`b``c.txt```" in text


def test_plain_text_has_no_terminal_escapes() -> None:
    ctx = followup_context(data.followup(hostile=True), LINKS)
    text = Renderer().render(TODO_TEMPLATE, ctx)
    assert "\x1b" not in text
    assert "[31m" not in text
    assert "FAILED tests/test_x.py" in text


def test_a_missing_variable_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    override = tmp_path / "notify" / "plain"
    override.mkdir(parents=True)
    (override / "queued.txt.j2").write_text("{{ repo }} {{ no_such_field }}")
    ctx = _context(NotifyEvent.QUEUED, Format.PLAIN, hostile=False)
    with pytest.raises(TemplateError, match="no_such_field"):
        Renderer(tmp_path).render(template_name(Format.PLAIN, NotifyEvent.QUEUED), ctx)


def test_an_override_directory_wins_and_other_templates_still_ship(tmp_path: Path) -> None:
    override = tmp_path / "notify" / "plain"
    override.mkdir(parents=True)
    (override / "queued.txt.j2").write_text("custom: {{ repo }} {{ slug }}")
    renderer = Renderer(tmp_path)
    ctx = _context(NotifyEvent.QUEUED, Format.PLAIN, hostile=False)
    assert renderer.render("notify/plain/queued.txt.j2", ctx) == "custom: acme/widgets pr-42"
    started = _context(NotifyEvent.STARTED, Format.PLAIN, hostile=False)
    assert "integrating into main" in renderer.render("notify/plain/started.txt.j2", started)


def test_html_templates_are_autoescaped_and_others_are_not(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>{{ v }}</p>")
    (tmp_path / "note.txt.j2").write_text("{{ v }}")
    renderer = Renderer(tmp_path)
    assert renderer.render("page.html", {"v": "<b>"}) == "<p>&lt;b&gt;</p>"
    assert renderer.render("note.txt.j2", {"v": "<b>"}) == "<b>"


def test_one_renderer_serves_every_text(tmp_path: Path) -> None:
    # Chat, todo, dashboard and GitHub texts share one environment per override directory, with
    # one set of filters: a GitHub template can use the Markdown filters of the todo.
    assert renderer() is renderer(None)
    assert renderer(tmp_path) is renderer(str(tmp_path))
    (tmp_path / "github").mkdir()
    (tmp_path / "github" / "help.md.j2").write_text("{{ line | md }} {{ line | code }}")
    assert renderer(tmp_path).render("github/help.md.j2", {"line": "a*b`c"}) == (
        "a\\*b\\`c `a*b'c`"
    )


def test_a_missing_value_is_both_our_error_and_jinja2s(tmp_path: Path) -> None:
    (tmp_path / "x.md.j2").write_text("{{ nothing_here }}")
    with pytest.raises(TemplateError, match="nothing_here") as caught:
        Renderer(tmp_path).render("x.md.j2", {})
    assert isinstance(caught.value, jinja2.UndefinedError)


@pytest.mark.parametrize("fmt", list(Format))
def test_a_shadow_decision_says_would_integrate(fmt: Format) -> None:
    n = data.notification(NotifyEvent.COMPLETED).model_copy(update={"mode": Mode.SHADOW})
    ctx = notification_context(n, None, LINKS)
    name = template_name(fmt, NotifyEvent.COMPLETED)
    text = Renderer().render(name, ctx)
    if fmt in JSON_FORMATS:
        text = json.dumps(json.loads(text), ensure_ascii=False)
    assert "would integrate" in text.replace("*", "").lower()
    assert "shadow mode, nothing was pushed" in text
    assert "integrated into" not in text.lower()
    assert " moved" not in text


@pytest.mark.parametrize("fmt", list(Format))
def test_a_started_car_behind_others_says_what_it_is_stacked_on(fmt: Format) -> None:
    ctx = {**_context(NotifyEvent.STARTED, fmt, hostile=False), "car": 3, "stacked_on": "pr-41"}
    text = Renderer().render(template_name(fmt, NotifyEvent.STARTED), ctx)
    assert "car 3 of the train, on top of" in text
    assert "pr" in text.split("on top of", 1)[1][:40]
    first = {**ctx, "car": 1, "stacked_on": "base"}
    assert "car 1" not in Renderer().render(template_name(fmt, NotifyEvent.STARTED), first)
    # A car behind others but built on base (a bisection half beside the head) is on base.
    beside = {**ctx, "car": 2, "stacked_on": "base"}
    assert "car 2" not in Renderer().render(template_name(fmt, NotifyEvent.STARTED), beside)


@pytest.mark.parametrize("fmt", list(Format))
def test_a_started_batch_names_the_candidates_checked_together(fmt: Format) -> None:
    ctx = {
        **_context(NotifyEvent.STARTED, fmt, hostile=False),
        "car": 1,
        "stacked_on": "base",
        "batch": ["pr-41", "pr-42", "pr-43"],
    }
    text = Renderer().render(template_name(fmt, NotifyEvent.STARTED), ctx)
    assert "one batch of 3 checked together" in text
    assert "43" in text.split("checked together", 1)[1]
    alone = {**ctx, "batch": []}
    assert "batch" not in Renderer().render(template_name(fmt, NotifyEvent.STARTED), alone)
