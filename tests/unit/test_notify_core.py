"""The pure core of notifications: which queue changes are news, and post-or-edit planning."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from mergebot.config import ConfigError, NotifyEvent, parse_server_config
from mergebot.events import envelope_for, parse_event
from mergebot.notify.conversation import Action, after, plan
from mergebot.notify.notification import (
    change_kind,
    from_change,
    from_envelope,
)
from mergebot.queue import ChangeError, IntegrationRecord, QueueItem, Status
from tests import notify_data as data
from tests.factories import raw_event

K = NotifyEvent


@pytest.mark.parametrize(
    ("before", "to", "kind"),
    [
        (None, "queued", K.QUEUED),
        ("", "queued", K.QUEUED),
        ("queued", "in_progress", K.STARTED),
        ("in_progress", "integrated", K.COMPLETED),
        ("queued", "integrated", None),  # found already on base: mergebot did nothing
        ("in_progress", "blocked", K.BLOCKED),
        ("blocked", "queued", K.RESUMED),
        ("in_progress", "queued", None),  # crash recovery is not news
        ("blocked", "superseded", K.SUPERSEDED),
        ("queued", "cancelled", K.CANCELLED),
    ],
)
def test_queue_changes_map_to_notification_names(
    before: str | None, to: str, kind: NotifyEvent | None
) -> None:
    assert change_kind(before, to) == kind


def _change(before: str | None, to: Status) -> dict[str, str]:
    item = QueueItem(
        repo=data.REPO,
        base="main",
        slug="pr-42",
        branch="feature/x",
        sha=data.SHA,
        status=to,
        ready_at=data.AT,
        updated_at=data.AT,
    )
    return {
        "item": item.model_dump_json(),
        "from": before or "",
        "to": str(to),
        "at": data.AT.isoformat(),
        "cause": "approved",
    }


def test_a_change_becomes_a_notification_with_an_envelope_for_webhooks() -> None:
    n = from_change(data.REPO, "1700000000000-0", _change("queued", Status.IN_PROGRESS))
    assert n is not None
    assert (n.kind, n.slug, n.sha, n.base) == (K.STARTED, "pr-42", data.SHA, "main")
    assert n.id == "change:1700000000000-0"
    assert n.envelope["name"] == "started"
    assert n.envelope["payload"]["from"] == "queued"


def test_a_rebuilt_car_s_new_place_is_a_started_notification_marked_rebuilt() -> None:
    """The integrator records a rebuilt car's place without a status change: the change goes
    from in_progress to in_progress and carries the item's new car."""
    fields = _change("in_progress", Status.IN_PROGRESS)
    item = QueueItem.model_validate_json(fields["item"])
    place = IntegrationRecord(car=1, stacked_on="base")
    fields["item"] = item.model_copy(update={"integration": place}).model_dump_json()
    n = from_change(data.REPO, "2-0", fields)
    assert n is not None
    assert (n.kind, n.rebuilt, n.car, n.stacked_on) == (K.STARTED, True, 1, "base")
    first = from_change(data.REPO, "1-0", _change("queued", Status.IN_PROGRESS))
    assert first is not None
    assert not first.rebuilt


def test_a_rebuilt_car_s_place_only_edits_its_started_message() -> None:
    started = data.notification(K.STARTED, car=2, stacked_on="pr-1")
    moved = data.notification(
        K.STARTED, at=data.AT + timedelta(seconds=9), car=1, stacked_on="base", rebuilt=True
    )
    shown = after(started, "m1")
    assert plan(shown, moved, can_edit=True).action is Action.EDIT
    # A sink that cannot edit is not told again; nor one without the started message.
    assert plan(after(started, None), moved, can_edit=False).action is Action.SKIP
    assert plan(None, moved, can_edit=True).action is Action.SKIP
    blocked = data.notification(K.BLOCKED, at=data.AT + timedelta(seconds=5))
    assert plan(after(blocked, "m1"), moved, can_edit=True).action is Action.SKIP


def test_blocked_and_integrated_changes_are_left_to_the_event_log() -> None:
    assert from_change(data.REPO, "1-0", _change("in_progress", Status.BLOCKED)) is None
    assert from_change(data.REPO, "1-0", _change("in_progress", Status.INTEGRATED)) is None


def test_a_malformed_change_is_an_error_naming_the_entry() -> None:
    with pytest.raises(ChangeError, match="1-7"):
        from_change(data.REPO, "1-7", {"to": "queued"})


def test_outcome_events_become_notifications_carrying_their_envelope() -> None:
    blocked = envelope_for(parse_event(raw_event("integration_blocked")).event, source="t")
    n = from_envelope(blocked)
    assert n is not None
    assert n.kind is K.BLOCKED
    assert n.followup_id == "pr-1-integration-blocked-aaaaaaa"
    assert n.details == {"files": ["a.txt"]}
    assert n.envelope == json.loads(blocked.to_json())
    done = envelope_for(parse_event(raw_event("integration_completed")).event, source="t")
    completed = from_envelope(done)
    assert completed is not None
    assert completed.kind is K.COMPLETED
    assert completed.main_after == "c" * 40
    approved = envelope_for(parse_event(raw_event("review_approved")).event, source="t")
    assert from_envelope(approved) is None


def test_first_message_is_posted_then_edited_through_the_lifecycle() -> None:
    queued = data.notification(K.QUEUED)
    first = plan(None, queued, can_edit=True)
    assert first.action is Action.POST
    conv = after(queued, "m1")
    started = data.notification(K.STARTED, at=data.AT + timedelta(seconds=1))
    step = plan(conv, started, can_edit=True)
    assert (step.action, step.previous) == (Action.EDIT, conv)


def test_a_sink_that_cannot_edit_posts_and_names_the_previous_state() -> None:
    conv = after(data.notification(K.STARTED), None)
    blocked = data.notification(K.BLOCKED, at=data.AT + timedelta(seconds=5))
    step = plan(conv, blocked, can_edit=False)
    assert step.action is Action.POST
    assert step.previous is not None
    assert step.previous.kind is K.STARTED


def test_a_late_started_never_overwrites_blocked_of_the_same_instant() -> None:
    blocked = data.notification(K.BLOCKED)
    started = data.notification(K.STARTED)  # same timestamp, arrives later
    assert plan(after(blocked, "m"), started, can_edit=True).action is Action.SKIP


def test_the_same_notification_twice_is_skipped() -> None:
    n = data.notification(K.QUEUED)
    assert plan(after(n, "m"), n, can_edit=True).action is Action.SKIP


def test_a_fixed_sha_continues_the_conversation_of_the_slug() -> None:
    blocked = data.notification(K.BLOCKED, sha=data.OLD_SHA)
    resumed = data.notification(K.RESUMED, at=data.AT + timedelta(minutes=1))
    step = plan(after(blocked, "m"), resumed, can_edit=True)
    assert step.action is Action.EDIT


def test_superseded_of_an_older_sha_does_not_replace_the_newer_message() -> None:
    newer = data.notification(K.QUEUED, at=data.AT)
    old_superseded = data.notification(
        K.SUPERSEDED, sha=data.OLD_SHA, at=data.AT + timedelta(seconds=1)
    )
    assert plan(after(newer, "m"), old_superseded, can_edit=True).action is Action.SKIP


def test_after_superseded_the_newer_sha_takes_over_even_if_stamped_earlier() -> None:
    superseded = data.notification(
        K.SUPERSEDED, sha=data.OLD_SHA, at=data.AT + timedelta(seconds=1)
    )
    newer = data.notification(K.QUEUED, at=data.AT)
    assert plan(after(superseded, "m"), newer, can_edit=True).action is Action.EDIT


def test_an_older_sha_arriving_late_is_skipped() -> None:
    current = data.notification(K.STARTED, at=data.AT + timedelta(minutes=5))
    late = data.notification(K.BLOCKED, sha=data.OLD_SHA, at=data.AT)
    assert plan(after(current, "m"), late, can_edit=True).action is Action.SKIP


def test_after_completion_a_new_lifecycle_gets_a_new_message() -> None:
    done = data.notification(K.COMPLETED, sha=data.OLD_SHA)
    again = data.notification(K.QUEUED, at=data.AT + timedelta(days=1))
    step = plan(after(done, "m"), again, can_edit=True)
    assert (step.action, step.previous) == (Action.POST, None)


def test_the_processor_re_recording_an_outcome_is_not_news() -> None:
    change = _change("", Status.QUEUED)
    change["cause"] = "integration recorded"
    assert from_change(data.REPO, "1-0", change) is None


def test_a_slack_sink_without_a_destination_is_a_config_error_naming_the_key() -> None:
    text = (
        '[repos."acme/widgets"]\nremote = "/r"\n[[repos."acme/widgets".notify]]\nsink = "slack"\n'
    )
    with pytest.raises(ConfigError, match=r'repos\."acme/widgets"\.notify\.0.*url_env'):
        parse_server_config(text, "mergebot.toml")
    bot_without_channel = text + 'bot_token_env = "SLACK_BOT"\n'
    with pytest.raises(ConfigError, match="channel"):
        parse_server_config(bot_without_channel, "mergebot.toml")
