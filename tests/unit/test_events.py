"""Canonical event validation: what each event requires, and how problems are reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mergebot.events import (
    EVENT_MODELS,
    TAXONOMY,
    Envelope,
    EventError,
    EventName,
    ReviewApproved,
    content_id,
    envelope_for,
    parse_event,
    parse_events_body,
    stored_event,
)
from tests.factories import raw_event

REQUIRED = {
    name: [field for field, info in model.model_fields.items() if info.is_required()]
    for name, model in EVENT_MODELS.items()
}


@pytest.mark.parametrize("name", list(EventName))
def test_every_event_parses_with_its_taxonomy(name: EventName) -> None:
    parsed = parse_event(raw_event(name))
    envelope = envelope_for(parsed.event, source="api")
    assert envelope.name == name
    assert envelope.type == TAXONOMY[name]
    assert envelope.type.startswith("domain.software-development.")
    assert envelope.event() == parsed.event


@pytest.mark.parametrize(
    ("name", "field"), [(n, f) for n, fields in REQUIRED.items() for f in fields]
)
def test_missing_required_field_is_named(name: EventName, field: str) -> None:
    raw = raw_event(name)
    del raw[field]
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert [e["loc"] for e in info.value.errors] == [[field]]
    assert info.value.errors[0]["type"] == "missing"


def test_required_fields_match_the_contract() -> None:
    assert set(REQUIRED[EventName.REVIEW_APPROVED]) == {
        "repo",
        "slug",
        "approved_at",
        "review_round",
        "reviewer_session_id",
    }
    assert set(REQUIRED[EventName.FINALIZE_READY]) == {
        "repo",
        "slug",
        "branch",
        "sha",
        "worker_session_id",
        "orchestrator_session_id",
        "ready_at",
    }
    assert set(REQUIRED[EventName.BRANCH_PUSHED]) == {
        "repo",
        "branch",
        "sha",
        "remote",
        "pushed_at",
        "pusher",
    }
    assert set(REQUIRED[EventName.INTEGRATION_BLOCKED]) == {
        "repo",
        "slug",
        "branch",
        "sha",
        "reason",
        "details",
        "blocked_at",
        "followup_id",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sha", "A" * 40),
        ("sha", "a" * 39),
        ("sha", "g" * 40),
        ("approved_at", "2026-11-25T10:00:00"),  # naive
        ("approved_at", 1764064800),  # a number, not ISO 8601
        ("approved_at", "yesterday"),
        ("review_round", 0),
        ("review_round", True),
        ("review_round", "1"),
        ("review_round", 1.5),
        ("reviewer_session_id", "   "),
        ("reviewer_session_id", 7),
        ("slug", "PR-1"),
        ("slug", "-pr"),
        ("repo", "no-slash"),
        ("repo", "a/b/c"),
    ],
)
def test_bad_values_are_refused_and_named(field: str, value: object) -> None:
    with pytest.raises(EventError) as info:
        parse_event(raw_event("review_approved", **{field: value}))
    assert [e["loc"] for e in info.value.errors] == [[field]]


@pytest.mark.parametrize("branch", ["a..b", "-x", "has space", "x.lock", "a~1", "a:b", "", "x/"])
def test_branch_names_git_refuses_are_refused(branch: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(raw_event("branch_pushed", branch=branch))
    assert info.value.errors[0]["loc"] == ["branch"]


def test_every_problem_is_reported_at_once() -> None:
    raw = raw_event("review_approved", sha="zz", review_round=False, approved_at="2026-01-01")
    del raw["slug"]
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert {e["loc"][0] for e in info.value.errors} == {
        "sha",
        "review_round",
        "approved_at",
        "slug",
    }


def test_unknown_name_and_bad_id_are_reported_together() -> None:
    with pytest.raises(EventError) as info:
        parse_event({"name": "review_approvedd", "id": "  ", "repo": "a/b"})
    assert {e["loc"][0] for e in info.value.errors} == {"name", "id"}
    assert "review_approved" in info.value.errors[0]["msg"]


def test_timestamps_are_normalized_to_utc_and_strings_trimmed() -> None:
    event = parse_event(
        raw_event(
            "review_approved",
            approved_at="2026-11-25T12:00:00+02:00",
            reviewer_session_id="  alice ",
        )
    ).event
    assert isinstance(event, ReviewApproved)
    assert event.approved_at == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert event.approved_at.utcoffset() is not None
    assert event.reviewer_session_id == "alice"


def test_extra_fields_are_kept_in_the_payload() -> None:
    parsed = parse_event(raw_event("finalize_ready", ticket="JIRA-7", attempt=2))
    payload = envelope_for(parsed.event, source="api").payload
    assert payload["ticket"] == "JIRA-7"
    assert payload["attempt"] == 2
    assert "name" not in payload
    assert "id" not in payload


def test_list_body_reports_the_index_of_each_bad_item() -> None:
    body = [raw_event("review_approved"), raw_event("branch_pushed", sha="x"), "nope"]
    with pytest.raises(EventError) as info:
        parse_events_body(body)
    assert [(e["index"], e["loc"]) for e in info.value.errors] == [(1, ["sha"]), (2, [])]


def test_empty_list_is_refused() -> None:
    with pytest.raises(EventError):
        parse_events_body([])


def test_content_id_is_stable_and_content_sensitive() -> None:
    a = envelope_for(parse_event(raw_event("review_approved")).event, source="api")
    b = envelope_for(parse_event(raw_event("review_approved")).event, source="github")
    c = envelope_for(parse_event(raw_event("review_approved", review_round=2)).event, source="api")
    assert a.id == b.id == content_id(a.name, a.payload)
    assert a.id != c.id


def _stored_text(name: str, payload: dict[str, Any]) -> str:
    """An envelope as the log stores it, around any payload (valid or not)."""
    return json.dumps(
        {"id": "e-1", "name": name, "type": "t", "source": "test",
         "received_at": "2026-11-25T10:00:00Z", "payload": payload}
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_a_stored_event_read_in_one_pass_equals_the_envelope_then_its_event(name: str) -> None:
    extra = {"previous_sha": "b" * 40, "note": {"free": ["form", 1, None]}}
    for payload in (raw_event(name), {**raw_event(name), **extra}):
        fields = {k: v for k, v in payload.items() if k not in ("name", "id")}
        text = _stored_text(name, fields)
        envelope = Envelope.from_json(text)
        found = stored_event(text)
        assert found is not None
        assert (found.repo, found.name) == (envelope.repo, envelope.name)
        assert found.event == envelope.event()
        assert type(found.event) is type(envelope.event())


def test_a_stored_event_that_does_not_validate_is_left_to_the_two_step_read() -> None:
    fields = {k: v for k, v in raw_event("finalize_ready").items() if k not in ("name", "id")}
    assert stored_event(_stored_text("finalize_ready", {**fields, "branch": "a..b"})) is None
    assert stored_event(_stored_text("review_approved", fields)) is None  # another event's payload
    assert stored_event(_stored_text("nonsense", fields)) is None
    assert stored_event('{"not": "an envelope"}') is None
    # The repo as stored (what `Envelope.repo` answers), even where the event's is trimmed.
    spaced = _stored_text("finalize_ready", {**fields, "repo": f" {fields['repo']} "})
    found = stored_event(spaced)
    assert found is not None
    assert (found.repo, found.event.repo) == (Envelope.from_json(spaced).repo, fields["repo"])
