"""Realistic and hostile notifications and follow-ups for template and sink tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mergebot.config import NotifyEvent
from mergebot.conversation_record import Conversation
from mergebot.followups import Followup, FollowupStatus
from mergebot.notify.notification import Notification

REPO = "acme/widgets"
SHA = "3f5e2a9c1d4b6e8f0a1b2c3d4e5f60718293a4b5"
OLD_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"
MAIN_BEFORE = "1111111111111111111111111111111111111111"
MAIN_AFTER = "2222222222222222222222222222222222222222"
AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)

# The hostile data set is kept beside the golden files it produces.
HOSTILE = json.loads((Path(__file__).resolve().parent / "golden" / "hostile.json").read_text())
HOSTILE_BRANCH: str = HOSTILE["branch"]
HOSTILE_MESSAGE: str = HOSTILE["message"]
HOSTILE_OUTPUT: str = HOSTILE["output_head"] * HOSTILE["output_head_repeat"] + HOSTILE["output_end"]
HOSTILE_FILES: list[str] = HOSTILE["files"] + [
    f"pkg/module_{i:03d}/file_{i:03d}.py" for i in range(496)
]
HOSTILE_COMMAND: str = HOSTILE["command"]
BASE_SHA = "4444444444444444444444444444444444444444"
INTEGRATION_SHA = "5555555555555555555555555555555555555555"


def notification(
    kind: NotifyEvent,
    *,
    hostile: bool = False,
    sha: str = SHA,
    at: datetime = AT,
    slug: str = "pr-42",
    nid: str | None = None,
    **extra: Any,
) -> Notification:
    fields: dict[str, Any] = {
        "id": nid or f"{kind}-{slug}-{sha[:7]}-{at.timestamp():.0f}",
        "kind": kind,
        "repo": REPO,
        "slug": slug,
        "branch": HOSTILE_BRANCH if hostile else "feature/faster-widgets",
        "sha": sha,
        "at": at,
        "base": "main",
    }
    if kind in (NotifyEvent.QUEUED, NotifyEvent.RESUMED):
        fields["cause"] = HOSTILE_MESSAGE if hostile else "approved by alice; finalize_ready"
    if kind is NotifyEvent.SUPERSEDED:
        fields["cause"] = "newer finalize_ready for the slug"
    if kind is NotifyEvent.CANCELLED:
        fields["cause"] = "candidate_withdrawn (closed)"
    if kind is NotifyEvent.BLOCKED:
        fields["followup_id"] = f"{slug}-integration-blocked-{sha[:7]}"
        if hostile:
            fields["reason"] = "merge_conflict"
            fields["details"] = {"files": HOSTILE_FILES, "message": HOSTILE_MESSAGE}
        else:
            fields["reason"] = "checks_failed"
            fields["details"] = {
                "checks": [
                    {
                        "name": "ci / tests (3.12)",
                        "state": "failure",
                        "url": "https://ci.example.com/runs/981?job=tests",
                        "summary": "2 failed, 311 passed in 48.2s",
                        "output": "FAILED tests/test_widgets.py::test_spin - assert 3 == 4\n"
                        "FAILED tests/test_widgets.py::test_stop - TimeoutError\n",
                    },
                    {"name": "lint", "state": "success"},
                ]
            }
    if kind is NotifyEvent.COMPLETED:
        fields.update(
            main_before=MAIN_BEFORE,
            main_after=MAIN_AFTER,
            checks=[{"name": "ci / tests (3.12)"}, {"name": "lint"}],
        )
    if kind is NotifyEvent.FROZEN:
        # Realistic: a person's freeze with an end; hostile: a red base with a hostile check.
        fields.update(slug="frozen:main", branch="main")
        if hostile:
            fields["cause"] = HOSTILE_MESSAGE
            fields["details"] = {"by": "mergebot", "kind": "clearance", "check": HOSTILE_MESSAGE}
        else:
            fields["cause"] = "release 2.4 is being cut"
            fields["details"] = {"by": "dana", "until": "2026-11-25T18:00:00+00:00"}
    if kind is NotifyEvent.UNFROZEN:
        fields.update(slug="frozen:main", branch="main")
        fields["details"] = {"by": "mergebot", "kind": "clearance"} if hostile else {"by": "dana"}
    fields.update(extra)
    return Notification(**fields)


def previous(kind: NotifyEvent, sha: str = SHA) -> Conversation:
    return Conversation(
        kind=kind, sha=sha, at=AT - timedelta(minutes=5), notification_id="prev", message_id="1"
    )


def followup(*, hostile: bool = False, status: FollowupStatus = FollowupStatus.OPEN) -> Followup:
    details: dict[str, Any]
    if hostile:
        details = {
            "files": HOSTILE_FILES,
            "checks": [
                {
                    "name": HOSTILE["check_name"],
                    "state": "failure",
                    "url": HOSTILE["check_url"],
                    "summary": HOSTILE_MESSAGE,
                    "output": HOSTILE_OUTPUT,
                    "kind": "required",
                },
                {
                    "name": HOSTILE_COMMAND,
                    "state": "failed",
                    "kind": "command",
                    "exit_code": 2,
                    "output_tail": HOSTILE_OUTPUT,
                },
            ],
            "message": HOSTILE_MESSAGE,
            "base_sha": BASE_SHA,
            "integration_sha": INTEGRATION_SHA,
            "integration_branch": "mergebot/integration/pr-42",
        }
        reason = "checks_failed"
    else:
        details = {"files": ["src/widgets/spin.py", "tests/test_spin.py"], "base_sha": BASE_SHA}
        reason = "merge_conflict"
    extra: dict[str, Any] = {}
    if status is not FollowupStatus.OPEN:
        extra = {"claimed_by": "bob", "claimed_at": AT + timedelta(minutes=3)}
    if status is FollowupStatus.RESOLVED:
        extra |= {
            "resolved_by": "mergebot",
            "resolved_at": AT + timedelta(hours=1),
            "resolution": f"integrated as {MAIN_AFTER[:7]}",
        }
    return Followup(
        id=f"pr-42-integration-blocked-{SHA[:7]}-2",
        repo=REPO,
        slug="pr-42",
        branch=HOSTILE_BRANCH if hostile else "feature/faster-widgets",
        sha=SHA,
        base="main",
        reason=reason,
        details=details,
        blocked_at=AT,
        event_id="evt-1",
        status=status,
        previous_id=f"pr-42-integration-blocked-{SHA[:7]}",
        created_at=AT,
        updated_at=AT,
        **extra,
    )
