"""Validate response bodies against the official REST description (the committed subset)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SUBSET = Path(__file__).resolve().parent.parent / "fixtures" / "github-openapi-subset.json"


@cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SUBSET.read_text())
    return data


@cache
def _matchers() -> list[tuple[str, re.Pattern[str], str]]:
    out = []
    for op_id, op in spec()["operations"].items():
        # {path} of contents and {ref} of git refs may hold slashes.
        pattern = re.sub(r"\\\{(path|ref)\\\}", ".+", re.escape(op["path"]))
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", pattern)
        out.append((op["method"], re.compile(f"^{pattern}$"), op_id))
    return out


def operation_for(method: str, path: str) -> str | None:
    """The operation id of a request, e.g. ("GET", "/repos/o/r/pulls/1") -> "pulls/get"."""
    for op_method, pattern, op_id in _matchers():
        if op_method == method and pattern.match(path):
            return op_id
    return None


def validate(op_id: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError when `body` is not what GitHub documents for `op_id`."""
    responses = spec()["operations"][op_id]["responses"]
    schema = responses.get(str(status))
    if schema is None and status >= 400:
        # GitHub answers errors it does not list per operation (a 403 "Resource not accessible
        # by integration", say) with its common error body.
        schema = {"$ref": "#/components/schemas/basic-error"}
    if schema is None:
        raise jsonschema.ValidationError(f"{op_id} documents no {status} response")
    wrapper = {"allOf": [schema], "components": spec()["components"]}
    jsonschema.Draft7Validator(wrapper).validate(body)
