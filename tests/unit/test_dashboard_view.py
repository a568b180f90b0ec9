"""The dashboard's pure view: what a person reads, from the status object of SPEC §9."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mergebot.web.dashboard_view import Links, ago, api_path, repo_path, repo_view, safe_url

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://ci.example/run/1", True),
        ("http://ci.example", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//evil.example/x", False),
        ("/relative", False),
        (None, False),
        (42, False),
    ],
)
def test_only_absolute_http_urls_become_links(url: object, kept: bool) -> None:
    assert (safe_url(url) is not None) is kept


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=45), "45s ago"),
        (timedelta(minutes=12, seconds=5), "12m ago"),
        (timedelta(hours=3, minutes=4), "3h 4m ago"),
        (timedelta(days=2, hours=5), "2d 5h ago"),
        (-timedelta(seconds=95), "in 1m"),
    ],
)
def test_ages_read_like_a_person_would_say_them(delta: timedelta, text: str) -> None:
    assert ago(NOW - delta, NOW) == text


def test_paths_quote_the_repo_parts() -> None:
    assert repo_path("acme/widgets") == "/repos/acme/widgets"
    assert api_path("acme/w.x") == "/api/repos/acme/w.x/queue"


def candidate(slug: str, status: str, sha: str, **extra: object) -> dict[str, object]:
    return {
        "slug": slug, "branch": f"feature/{slug}", "sha": sha, "status": status,
        "ready_at": "2026-11-25T09:58:00+00:00", "position": None, "reasons": [],
        "followup_id": None, "updated_at": None, **extra,
    }  # fmt: skip


def test_sections_keep_queue_order_and_anchor_each_slug_once() -> None:
    status = {
        "repo": "acme/widgets", "base": "main", "mode": "live", "dead_letters": 3,
        "lease": {"owner": "integrator-1", "expires_at": "2026-11-25T10:01:30+00:00"},
        "candidates": [
            candidate("pr-9", "blocked", "9" * 40, followup_id="pr-9-integration-blocked-9999999"),
            candidate("pr-2", "queued", "2" * 40, position=2),
            candidate("pr-1", "queued", "1" * 40, position=1),
            candidate("pr-3", "waiting", "3" * 40, reasons=["no approval"]),
            candidate("pr-9", "superseded", "8" * 40),
        ],
    }  # fmt: skip
    view = repo_view(status, NOW, links=Links("https://github.com"))
    assert [r.slug for r in view.queued] == ["pr-1", "pr-2"]
    assert [r.reasons for r in view.waiting] == [["no approval"]]
    assert [(r.slug, r.anchor) for r in view.recent] == [("pr-9", None)]
    assert view.blocked[0].anchor == "pr-9"
    assert view.blocked[0].followup_anchor == "followup-pr-9-integration-blocked-9999999"
    assert view.blocked[0].pull_request == "https://github.com/acme/widgets/pull/9"
    assert view.followups == "/repos/acme/widgets/followups"  # the list page, not JSON
    assert view.blocked[0].followup_url == (
        "/repos/acme/widgets/followups/pr-9-integration-blocked-9999999"
    )
    assert view.counts == {
        "queued": 2, "in_progress": 0, "waiting": 1, "blocked": 1,
        "integrated": 0, "superseded": 1, "cancelled": 0,
    }  # fmt: skip
    assert (view.lease_owner, view.lease_expires) == ("integrator-1", "in 1m")
    assert view.queued[0].ready_at == "2m ago"


def test_integration_records_are_read_tolerantly() -> None:
    status = {
        "repo": "a/b",
        "base": "main",
        "candidates": [candidate("x", "in_progress", "1" * 40)],
    }
    record = {
        "attempt": 3, "commit": "e" * 40, "base_sha": "d" * 40,
        "checks": [
            {"name": "unit", "state": "passed", "seconds": 1.25, "url": "javascript:x"},
            {"state": "failed"},  # no name: not a check
            "garbage",
        ],
    }  # fmt: skip
    view = repo_view(status, NOW, integrations={"x:" + "1" * 40 + ":feature/x": record})
    integration = view.current[0].integration
    assert integration is not None
    assert (integration.attempt, integration.integration_sha) == (3, "e" * 40)
    assert [(c.name, c.state, c.url, c.seconds) for c in integration.checks] == [
        ("unit", "passed", None, "1.2s")
    ]
    assert view.lease_owner is None
    assert view.followups == "/repos/a/b/followups"
