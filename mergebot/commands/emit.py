"""`mergebot emit <name> key=value…`: post one canonical event to a running server.

Meant for people and scripts: values are strings, except `key:=<json>` (lists, objects, numbers,
booleans) and the integer fields of the event (`review_round=2`); a missing timestamp field is
filled with the current time. The server decides validity — its answer is printed either way, and
a refusal exits non-zero with the server's message.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AwareDatetime

from mergebot.config import ConfigError, load_settings
from mergebot.events import EVENT_MODELS, EventName

HELP = "post one canonical event to a running server (MERGEBOT_URL, MERGEBOT_API_TOKEN)"


class UsageError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(sorted(EVENT_MODELS))
    parser.add_argument("name", help=f"event name: {names}")
    parser.add_argument(
        "fields",
        nargs="*",
        metavar="key=value",
        help="a field; key:=JSON for lists, objects, numbers; id=… sets the idempotency key",
    )
    parser.add_argument("--url", help="server URL (default MERGEBOT_URL, else MERGEBOT_HOST/PORT)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")


def _int_fields(name: str) -> set[str]:
    model = EVENT_MODELS.get(EventName(name)) if name in EVENT_MODELS else None
    if model is None:
        return set()
    return {k for k, f in model.model_fields.items() if f.annotation is int}


def _time_fields(name: str) -> list[str]:
    model = EVENT_MODELS.get(EventName(name)) if name in EVENT_MODELS else None
    if model is None:
        return []
    return [k for k, f in model.model_fields.items() if f.annotation in (AwareDatetime, datetime)]


def build_event(name: str, fields: list[str], *, now: datetime | None = None) -> dict[str, Any]:
    """The flat event object of the canonical API from `key=value` / `key:=json` arguments."""
    event: dict[str, Any] = {"name": name}
    ints = _int_fields(name)
    for arg in fields:
        key, sep, value = arg.partition("=")
        if not sep or not key.rstrip(":"):
            raise UsageError(f"{arg!r}: expected key=value or key:=json")
        if key.endswith(":"):
            key = key[:-1]
            try:
                parsed: Any = json.loads(value)
            except ValueError as exc:
                raise UsageError(f"{key}:= is not valid JSON: {exc}") from None
        elif key in ints:
            try:
                parsed = int(value)
            except ValueError:
                raise UsageError(f"{key} must be an integer, not {value!r}") from None
        else:
            parsed = value
        if key == "name":
            raise UsageError("the event name is the first argument, not a name= field")
        if key in event:
            raise UsageError(f"{key} is given twice")
        event[key] = parsed
    stamp = (now or datetime.now(UTC)).isoformat()
    for field in _time_fields(name):
        event.setdefault(field, stamp)
    return event


def _display(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def post(url: str, token: str, body: object, timeout: float) -> tuple[int, Any]:
    """POST the body; (status, decoded answer). Raises OSError when the server cannot be reached."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {_display(url)}")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url.rstrip("/") + "/events",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"error": raw.decode("utf-8", "replace").strip() or f"HTTP {status}"}


def _print_refusal(status: int, answer: Any) -> None:
    message = answer.get("error") if isinstance(answer, dict) else None
    print(
        f"mergebot: the server refused the event ({status}): {message or answer}", file=sys.stderr
    )
    for err in answer.get("errors", []) if isinstance(answer, dict) else []:
        loc = ".".join(str(p) for p in err.get("loc", [])) or "<event>"
        print(f"  {loc}: {err.get('msg')}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    url = args.url or settings.server_url()
    if urlsplit(url).scheme not in ("http", "https"):
        print(
            f"mergebot: the server URL must be http(s)://…, not {_display(url)!r}", file=sys.stderr
        )
        return 2
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if not token:
        print("mergebot: set MERGEBOT_API_TOKEN to the server's API token", file=sys.stderr)
        return 2
    try:
        event = build_event(args.name, args.fields)
    except UsageError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 2
    try:
        status, answer = post(url, token, event, args.timeout)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"mergebot: cannot reach the server at {_display(url)}: {reason}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        print(json.dumps(answer, indent=2))
        return 0
    _print_refusal(status, answer)
    return 1
