"""Realistic and hostile notifications and follow-ups for template and sink tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mergebot.config import NotifyEvent
from mergebot.followups import Followup, FollowupStatus
from mergebot.notify.conversation import Conversation
from mergebot.notify.notification import Notification

REPO = "acme/widgets"
SHA = "3f5e2a9c1d4b6e8f0a1b2c3d4e5f60718293a4b5"
OLD_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"
MAIN_BEFORE = "1111111111111111111111111111111111111111"
MAIN_AFTER = "2222222222222222222222222222222222222222"
AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)

HOSTILE_BRANCH = "fix/<b>bold</b>&_{x}(y)=|#+-.!@everyone`tick`"
HOSTILE_MESSAGE = (
    "@everyone <!channel> **pwned** <script>alert(1)</script> [click](http://evil.example) "
    "_*[]()~`>#+-=|{}.!\\ ```escape```"
)
HOSTILE_OUTPUT = "collected 311 items\n" * 80 + (
    "\x1b[31mFAILED\x1b[0m tests/test_x.py::test_<b>y</b> - AssertionError\n"
    "```\n</pre><a href='x'>*not bold*</a>\n@here _under_ \\back\\slash\n"
)
HOSTILE_FILES = [
    "src/<img src=x onerror=alert(1)>.py",
    "docs/*bold*_[link](http://evil.example)~~.md",
    "a`b``c.txt",
    "weird|pipe#hash+plus-minus=eq{brace}.dot!bang",
] + [f"pkg/module_{i:03d}/file_{i:03d}.py" for i in range(496)]


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
                    "name": "tests <b>&</b> `lint`",
                    "state": "failure",
                    "url": "https://ci.example.com/runs/1?a=(b)",
                    "summary": HOSTILE_MESSAGE,
                    "output": HOSTILE_OUTPUT,
                }
            ],
            "message": HOSTILE_MESSAGE,
        }
        reason = "checks_failed"
    else:
        details = {"files": ["src/widgets/spin.py", "tests/test_spin.py"]}
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
