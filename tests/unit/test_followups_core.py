"""Follow-ups from blocked events, and who may claim and resolve them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mergebot.events import envelope_for, parse_event
from mergebot.followups import (
    FollowupStateError,
    FollowupStatus,
    block_info,
    claim,
    from_blocked,
    resolve,
)
from tests import notify_data as data
from tests.factories import raw_event


def test_a_blocked_event_becomes_an_open_followup_linked_to_the_previous_one() -> None:
    env = envelope_for(parse_event(raw_event("integration_blocked")).event, source="t")
    f = from_blocked(env, previous_id="pr-1-integration-blocked-0000000", now=data.AT)
    assert f.id == "pr-1-integration-blocked-aaaaaaa"
    assert f.status is FollowupStatus.OPEN
    assert f.previous_id == "pr-1-integration-blocked-0000000"
    assert f.event_id == env.id
    assert f.info().files == ["a.txt"]


def test_a_followup_is_never_its_own_previous() -> None:
    env = envelope_for(parse_event(raw_event("integration_blocked")).event, source="t")
    f = from_blocked(env, previous_id="pr-1-integration-blocked-aaaaaaa", now=data.AT)
    assert f.previous_id is None


def test_details_are_read_whatever_the_producer_named_them() -> None:
    info = block_info(
        {
            "conflicts": ["a.py", "b.py", "a.py"],
            "failed_checks": [
                {"name": "tests", "conclusion": "failure", "details_url": "https://ci/1"},
                {"name": "lint", "state": "success"},
                "build",
            ],
            "missing_checks": ["deploy"],
            "error": "boom",
        }
    )
    assert info.files == ["a.py", "b.py"]
    assert [(c.name, c.url) for c in info.checks] == [("tests", "https://ci/1"), ("build", None)]
    assert info.missing == ["deploy"]
    assert info.message == "boom"


def test_claim_then_resolve_records_who_and_when() -> None:
    f = data.followup()
    claimed = claim(f, "bob", data.AT)
    assert (claimed.status, claimed.claimed_by, claimed.claimed_at) == (
        FollowupStatus.CLAIMED,
        "bob",
        data.AT,
    )
    assert claim(claimed, "bob", data.AT + timedelta(minutes=1)) == claimed
    done = resolve(claimed, "bob", data.AT + timedelta(hours=1), "fixed upstream")
    assert (done.status, done.resolved_by, done.resolution) == (
        FollowupStatus.RESOLVED,
        "bob",
        "fixed upstream",
    )
    assert resolve(done, "carol", data.AT, "again") == done


def test_claims_that_the_status_does_not_allow_are_refused_with_the_reason() -> None:
    claimed = claim(data.followup(), "bob", data.AT)
    with pytest.raises(FollowupStateError, match="already claimed by bob"):
        claim(claimed, "carol", data.AT)
    with pytest.raises(FollowupStateError, match="resolved"):
        claim(resolve(claimed, "bob", data.AT, "x"), "carol", data.AT)
    with pytest.raises(FollowupStateError, match="name"):
        claim(data.followup(), "  ", data.AT)
