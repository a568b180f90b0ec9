"""`plain_json`: a body whose bytes pass it is validated without walking each event for lone
surrogates and deep nesting. Property: for any body, skipping the walk where `plain_json` allows
it gives exactly the answer the walk gives, in any encoding JSON may come in."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mergebot.events import MAX_DEPTH, EventError, loads_json, parse_events_body, plain_json
from tests.factories import raw_event

text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
scalars = st.none() | st.booleans() | st.integers() | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"deeper": value}
    return value


def outcome(body: Any, *, plain: bool) -> object:
    try:
        return [(p.id, p.event) for p in parse_events_body(body, plain=plain)]
    except EventError as exc:
        return exc.errors


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["review_approved", "finalize_ready", "branch_pushed"]),
    extra=st.dictionaries(text, values, max_size=3),
    depth=st.integers(min_value=0, max_value=MAX_DEPTH + 2),
    as_list=st.booleans(),
    ascii_only=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
)
def test_skipping_the_walk_where_plain_json_allows_it_changes_no_answer(
    name: str,
    extra: dict[str, Any],
    depth: int,
    as_list: bool,
    ascii_only: bool,
    encoding: str,
) -> None:
    event = {**raw_event(name), **extra, "deep": nested(depth)}
    body_value = [event] if as_list else event
    try:
        raw = json.dumps(body_value, ensure_ascii=ascii_only).encode(encoding, "surrogatepass")
    except UnicodeEncodeError:
        return  # text JSON could not carry at all
    body = loads_json(raw)
    walked = outcome(body, plain=False)
    if plain_json(raw):
        assert outcome(body, plain=True) == walked


def test_a_lone_surrogate_or_deep_nesting_is_never_plain() -> None:
    surrogate = json.dumps({**raw_event("review_approved"), "note": "\ud800"}).encode()
    assert b"\\ud800" in surrogate
    assert not plain_json(surrogate)
    deep = json.dumps({**raw_event("review_approved"), "deep": nested(MAX_DEPTH + 1)}).encode()
    assert not plain_json(deep)
    raw_surrogate = '{"name": "review_approved", "note": "\ud800"}'.encode("utf-8", "surrogatepass")
    assert not plain_json(raw_surrogate)
    assert plain_json(json.dumps(raw_event("review_approved")).encode())
