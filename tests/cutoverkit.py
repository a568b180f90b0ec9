"""Recorded shadow histories for cutover tests: the events mergebot stores in shadow mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mergebot.events import EVENT_MODELS, Envelope, envelope_for

REPO = "acme/widgets"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
BASE_BEFORE = "9" * 40


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def env(name: str, **payload: Any) -> Envelope:
    event = EVENT_MODELS[name].model_validate({"repo": REPO, **payload})
    return envelope_for(event, source="test")


def ready(slug: str, sha: str, minute: int) -> Envelope:
    return env(
        "finalize_ready", slug=slug, branch=f"b/{slug}", sha=sha, worker_session_id="w",
        orchestrator_session_id="o", ready_at=at(minute),
    )  # fmt: skip


def would_integrate(slug: str, sha: str, minute: int, mode: str = "shadow") -> Envelope:
    return env(
        "integration_completed", slug=slug, branch=f"b/{slug}", sha=sha, main_before=BASE_BEFORE,
        main_after="8" * 40, integrated_at=at(minute), checks=[], mode=mode,
    )  # fmt: skip


def would_block(slug: str, sha: str, minute: int, reason: str = "checks_failed") -> Envelope:
    return env(
        "integration_blocked", slug=slug, branch=f"b/{slug}", sha=sha, reason=reason,
        details={}, blocked_at=at(minute), followup_id=f"{slug}-f", mode="shadow",
    )  # fmt: skip


def withdrawn(slug: str, minute: int, reason: str = "closed") -> Envelope:
    return env("candidate_withdrawn", slug=slug, reason=reason, at=at(minute))
