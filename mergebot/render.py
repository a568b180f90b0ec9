"""Every human-facing text comes from a jinja2 template; this is the one place that loads them.

Pure apart from reading template files: a `Renderer` turns a template name and a plain-data context
into text. Undefined variables are errors (StrictUndefined), so a template that names a field the
context does not carry fails loudly in the golden tests instead of rendering an empty string.
Notifications, follow-up todos, the dashboard and every text mergebot shows on GitHub (check runs,
PR comments, command replies) are rendered here, with one set of filters; `renderer()` hands out
one shared `Renderer` per override directory, so templates are parsed once per process.

Templates are searched in order: the operator's override directory (`templates_dir` in the server
config), then the templates that ship with mergebot — the packaged copy `mergebot/_templates` in
an installed wheel, or `templates/` of a source checkout. Autoescaping is on only for `.html`
templates: chat and Markdown formats need their own escaping, which the filters below provide.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jinja2

T = TypeVar("T")

PACKAGED_TEMPLATES = Path(__file__).resolve().parent / "_templates"
CHECKOUT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# ANSI colour/cursor sequences (CI output is full of them) and other C0/C1 controls except \t \n.
_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Telegram MarkdownV2: every one of these must be preceded by a backslash in ordinary text
# (https://core.telegram.org/bots/api#markdownv2-style), and the backslash itself too.
TELEGRAM_SPECIAL = "_*[]()~`>#+-=|{}.!\\"
_TG_RE = re.compile("([" + re.escape(TELEGRAM_SPECIAL) + "])")
# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that can start or
# end markup (emphasis, links, headings, lists, tables, HTML, autolinks).
_MD_RE = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")
_DISCORD_RE = re.compile(r"([\\`*_~|>#\-\[\]()<])")
_MENTION_RE = re.compile(r"@(?=\w)")
_BACKTICKS_RE = re.compile(r"`+")
_SLACK_TICK_RUN = re.compile(r"`(?=`)")


REASON_TEXT = {
    "merge_conflict": "merge conflict",
    "checks_failed": "checks failed",
    "checks_missing": "required checks never appeared",
    "checks_timeout": "checks did not finish in time",
    "push_rejected": "push rejected",
    "config_error": "invalid .github/mergebot.toml",
}


def reason_text(reason: object) -> str:
    """A block's machine reason (`merge_conflict`) as people read it (merge conflict)."""
    if not reason or not isinstance(reason, str):
        return "blocked"
    return REASON_TEXT.get(reason, reason.replace("_", " "))


def in_words(reason: str) -> str:
    """A reason as people read it: a leading machine code (`merge_conflict: …`) in words."""
    code, sep, rest = reason.partition(": ")
    if code in REASON_TEXT:
        return f"{REASON_TEXT[code]}{sep}{rest}"
    return REASON_TEXT.get(reason, reason)


def template_roots(override: str | Path | None = None) -> list[Path]:
    """Where templates are looked up, the operator's directory first."""
    roots: list[Path] = []
    if override:  # None or "" (an unset key): the shipped templates only
        roots.append(Path(override))
    roots.append(PACKAGED_TEMPLATES if PACKAGED_TEMPLATES.is_dir() else CHECKOUT_TEMPLATES)
    return roots


# -- filters (also usable from Python) -----------------------------------------------------------


def clean(value: object) -> str:
    """Text from untrusted sources, without terminal escapes and control characters."""
    return _CONTROL_RE.sub("", _ANSI_RE.sub("", str(value)))


def one_line(value: object) -> str:
    """Collapse newlines and runs of whitespace: for names and titles that must stay on a line."""
    return " ".join(clean(value).split())


def telegram_escape(value: object) -> str:
    """Ordinary text inside a Telegram MarkdownV2 message."""
    return _TG_RE.sub(r"\\\1", clean(value))


def telegram_code(value: object) -> str:
    """Text inside a MarkdownV2 `code` or ```pre``` entity: only ` and \\ are escaped there."""
    return clean(value).replace("\\", "\\\\").replace("`", "\\`")


def telegram_url(value: object) -> str:
    """The (…) part of a MarkdownV2 inline link: only ) and \\ are escaped there."""
    return one_line(value).replace("\\", "\\\\").replace(")", "\\)")


def slack_escape(value: object) -> str:
    """Slack mrkdwn text: &, < and > are the control characters (they make links and mentions
    such as <!channel>); Slack has no escape for * _ ~ `, so those stay literal formatting,
    except that a run of backticks is broken up (a zero-width space between them) so text
    from outside cannot open or close a ``` block."""
    text = clean(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SLACK_TICK_RUN.sub("`\u200b", text)


def slack_link(url: object, label: object) -> str:
    """A mrkdwn link; the label is escaped and a | in the URL cannot end it early."""
    target = one_line(url).replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{target}|{slack_escape(one_line(label))}>"


def slack_code(value: object) -> str:
    """An inline `code` span in Slack mrkdwn. Slack has no longer fences and no escape, so a
    backtick inside would end the span: it is shown as the look-alike U+02CB instead."""
    return "`" + slack_escape(one_line(value).replace("`", "\u02cb")) + "`"


def slack_block(value: object) -> str:
    """A ```pre``` block in Slack mrkdwn. A run of backticks inside would close it early, so a
    zero-width space is put between consecutive backticks (the text reads the same)."""
    return f"```\n{slack_escape(value).rstrip(chr(10))}\n```"


def split_text(value: object, limit: int) -> list[str]:
    """`value` in pieces of at most `limit` characters, cut at line ends, for platforms whose
    text objects are small (a Slack section holds 3,000 characters). A ``` block cut in two is
    closed at the end of one piece and opened again at the start of the next."""
    width = limit - 8  # room for the fence lines a cut adds
    lines: list[str] = []
    for line in str(value).split("\n"):  # a single overlong line is cut where it must be
        lines += [line[i : i + width] for i in range(0, len(line), width)] or [""]
    pieces: list[str] = []
    current: list[str] = []
    in_block = False
    for line in lines:
        if current and sum(len(c) + 1 for c in current) + len(line) > limit - 4:
            pieces.append("\n".join(current) + ("\n```" if in_block else ""))
            current = ["```"] if in_block else []
        current.append(line)
        if line.count("```") % 2:
            in_block = not in_block
    pieces.append("\n".join(current))
    return [p for p in pieces if p.strip()]


_LOGIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


def mention(value: object) -> str:
    """A GitHub login after an @ (the person is meant to be notified); anything that is not a
    login is escaped Markdown, so it can mention nobody else (a team) nor add markup."""
    text = one_line(value)
    return text if _LOGIN_RE.fullmatch(text) else markdown_escape(text)


def shell_quote(value: object) -> str:
    """A value in a shell command people copy (a branch name may hold `;`, `$(…)` or spaces)."""
    return shlex.quote(one_line(value))


def _no_mentions(text: str) -> str:
    # A zero-width joiner after @ keeps the text readable and stops @everyone / @user pings.
    return _MENTION_RE.sub("@\u2060", text)


def markdown_escape(value: object) -> str:
    """Inline text in GitHub-flavoured Markdown (PR comments, todo files)."""
    return _no_mentions(_MD_RE.sub(r"\\\1", one_line(value)))


def markdown_code(value: object) -> str:
    """An inline code span that survives backticks in the value (CommonMark's fence rule)."""
    text = one_line(value)
    longest = max((len(m) for m in _BACKTICKS_RE.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_cell(value: object) -> str:
    """Inside a GFM table cell a | ends the cell even within a code span, unless escaped."""
    return str(value).replace("|", "\\|")


def markdown_block(value: object, lang: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run inside."""
    text = clean(value).rstrip("\n")
    longest = max((len(m) for m in _BACKTICKS_RE.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def discord_escape(value: object) -> str:
    """Inline text in Discord markdown (the sink also turns mentions off: allowed_mentions)."""
    return _no_mentions(_DISCORD_RE.sub(r"\\\1", one_line(value)))


def discord_block(value: object) -> str:
    """A Discord code block; Discord has no longer fences, so ``` inside is broken up."""
    text = _SLACK_TICK_RUN.sub("`\u200b", clean(value).rstrip("\n"))
    return f"```\n{text}\n```"


def to_json(value: Any) -> str:
    """A JSON literal for the JSON templates (Slack Block Kit, Discord embeds)."""
    return json.dumps(value, ensure_ascii=False)


def short_sha(value: object) -> str:
    return str(value)[:7]


def inline_code(value: object) -> str:
    """A plain code span for short one-line values (a command line someone typed): backticks
    become ' and newlines spaces, so the value can neither end the span nor start a new line."""
    return "`" + str(value).replace("`", "'").replace("\n", " ").strip() + "`"


def tail(value: object, lines: int = 20, chars: int = 2000) -> str:
    """The end of a long output: the last `lines` lines, at most `chars` characters, starting
    at the start of a line (a line cut in its middle reads as a different message). Only a
    last line longer than `chars` by itself is shown from its middle, after a "…"."""
    text = clean(value).rstrip("\n")
    kept = text.splitlines()[-lines:] if lines > 0 else []
    out = "\n".join(kept)
    if len(out) > chars:
        end = out[-(chars - 2) :]
        newline = end.find("\n")
        out = "…\n" + (end[newline + 1 :] if newline >= 0 else end)
    return out


def shorten(value: object, width: int = 200) -> str:
    """A single line cut to `width` characters with an ellipsis."""
    text = one_line(value)
    return text if len(text) <= width else text[: width - 1] + "…"


FILTERS = {
    "clean": clean,
    "one_line": one_line,
    "tg": telegram_escape,
    "tg_code": telegram_code,
    "tg_url": telegram_url,
    "slack": slack_escape,
    "slack_link": slack_link,
    "slack_code": slack_code,
    "slack_block": slack_block,
    "shell": shell_quote,
    "split_text": split_text,
    "mention": mention,
    "reason_text": reason_text,
    "md": markdown_escape,
    "md_code": markdown_code,
    "md_block": markdown_block,
    "md_cell": markdown_cell,
    "discord": discord_escape,
    "discord_block": discord_block,
    "json": to_json,
    "short_sha": short_sha,
    "code": inline_code,
    "tail": tail,
    "shorten": shorten,
}


class TemplateError(Exception):
    """A template is missing, broken, or needs a value the context does not have."""


class TemplateValueError(TemplateError, jinja2.UndefinedError):
    """A template names a value the context does not carry. Also a `jinja2.UndefinedError`, so
    code that guards against jinja2's own error catches it as well."""


class Renderer:
    """Renders templates by name (e.g. `notify/telegram/blocked.md2.j2`)."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        self.roots = template_roots(override_dir)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(r) for r in self.roots]),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "html.j2"),
                default_for_string=False,
                default=False,
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.filters.update(FILTERS)

    def _guarded(self, name: str, work: Callable[[], T]) -> T:
        """Run `work` with jinja2's errors turned into ours, naming the template."""
        try:
            return work()
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name!r} not found") from None
        except jinja2.UndefinedError as exc:
            raise TemplateValueError(f"template {name!r}: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {exc.filename or name!r} line {exc.lineno}: {exc.message}"
            ) from None

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self._guarded(name, lambda: self.env.get_template(name).render(context))

    def render_parts(self, name: str, context: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """The rendered body and the strings the template exports with top-level `{% set %}`
        (a check run template sets its `title` beside the summary it renders)."""

        def work() -> tuple[str, dict[str, str]]:
            module = self.env.get_template(name).make_module(context)
            exports = {
                key: str(value)
                for key, value in vars(module).items()
                if not key.startswith("_") and isinstance(value, str)
            }
            return str(module), exports

        return self._guarded(name, work)

    def render_json(self, name: str, context: dict[str, Any]) -> dict[str, Any]:
        """Render a JSON template (Block Kit, embeds) and check that it is a JSON object."""
        text = self.render(name, context)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"template {name!r} did not produce JSON: {exc}") from None
        if not isinstance(value, dict):
            raise TemplateError(f"template {name!r} must produce a JSON object")
        return value

    def names(self, prefix: str = "") -> list[str]:
        """Every template under `prefix` that is not a partial (partials start with `_`)."""
        return sorted(
            n
            for n in self.env.list_templates()
            if n.startswith(prefix) and not Path(n).name.startswith("_")
        )


@functools.cache
def _shared(override: str | None) -> Renderer:
    return Renderer(override)


def renderer(override_dir: str | Path | None = None) -> Renderer:
    """The process-wide `Renderer` for an override directory (None: the shipped templates)."""
    return _shared(None if override_dir is None else str(override_dir))


def take(items: Sequence[Any], limit: int) -> tuple[list[Any], int]:
    """The first `limit` items and how many were left out (for "… and 480 more files")."""
    shown = list(items[: max(limit, 0)])
    return shown, len(items) - len(shown)


def cut(text: str, limit: int, marker: str = "\n…") -> str:
    """Last-resort cut of an already rendered text to a platform's hard length limit."""
    if len(text) <= limit:
        return text
    return text[: limit - len(marker)] + marker


_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Optional sections leave runs of blank lines; Markdown needs at most one."""
    return _BLANK_RUNS.sub("\n\n", text).strip()


TODO_TEMPLATE = "followup/todo.md.j2"


def render_todo(context: dict[str, Any], *, templates_dir: str | None = None) -> str:
    """A follow-up todo as a Markdown document: the exported file, the PR comment (cut to fit by
    the GitHub renderer) and the source of the dashboard's follow-up page."""
    return tidy(renderer(templates_dir).render(TODO_TEMPLATE, context))


def joined(parts: Iterable[str], sep: str = ", ") -> str:
    return sep.join(parts)
