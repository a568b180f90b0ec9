"""Blocked follow-ups: the todo a blocked candidate leaves for its author (SPEC §7) — pure part.

Every `integration_blocked` event becomes one follow-up, identified by the event's `followup_id`
(`<slug>-integration-blocked-<sha7>`, `-2`, `-3`… allocated by the integrator). A follow-up is work
someone owns: `open → claimed → resolved`; it is resolved automatically when its slug is
integrated (or withdrawn). Storage lives in `mergebot.store.followups`; this module decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mergebot.events import Envelope, EventName
from mergebot.ids import FollowupId, Repo, Sha, Slug
from mergebot.render import reason_text


class FollowupStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class FailedCheck:
    name: str
    state: str = "failure"
    url: str | None = None
    summary: str = ""
    output: str = ""
    kind: str = ""  # "command" (run by mergebot: `name` is the command line) or "required"
    exit_code: int | None = None
    flaky_recent: int = 0  # times it failed and then passed on one commit, last 7 days


@dataclass(frozen=True)
class BlockInfo:
    """The facts of a block, read tolerantly from the event's free-form `details`."""

    files: list[str] = field(default_factory=list)
    checks: list[FailedCheck] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    message: str = ""
    diagnosis: str = ""
    output: str = ""
    # What the candidate was merged onto, and the commit and branch its checks ran on: what a
    # person needs to see what it conflicted with, or to rebuild the checked tree locally.
    base_sha: str = ""
    integration_sha: str = ""
    integration_branch: str = ""
    # A culprit isolated by bisection: the batch first found red (slugs).
    bisection_batch: list[str] = field(default_factory=list)
    reruns: int = 0  # how many times the failed checks were run again on the same commit
    rerun_refused: list[str] = field(default_factory=list)  # checks the forge would not re-run
    # Checks the forge would re-run only once their workflow run finished, which it had not
    # when the checks' time ran out.
    rerun_timed_out: list[str] = field(default_factory=list)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int | float) and str(v).strip()]
    return []


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _check(raw: object) -> FailedCheck | None:
    if isinstance(raw, str):
        return FailedCheck(name=raw)
    if not isinstance(raw, dict) or not _text(raw.get("name")).strip():
        return None
    url = raw.get("url") or raw.get("details_url") or raw.get("html_url")
    return FailedCheck(
        name=str(raw["name"]),
        state=_text(raw.get("state") or raw.get("conclusion")) or "failure",
        url=url if isinstance(url, str) and url.strip() else None,
        summary=_text(raw.get("summary") or raw.get("description")),
        output=_text(raw.get("output_tail") or raw.get("output") or raw.get("log")),
        kind=_text(raw.get("kind")),
        exit_code=code if isinstance(code := raw.get("exit_code"), int) else None,
        flaky_recent=_count(raw.get("flaky_recent")),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def block_info(details: dict[str, Any]) -> BlockInfo:
    """Conflict files, failed checks, missing checks and messages from `details`.

    Producers differ in naming (`files` / `conflicts` / `conflict_files`, `checks` /
    `failed_checks`, `output` / `output_tail`); a block is never hidden for a naming choice.
    """
    files: list[str] = []
    for key in ("files", "conflicts", "conflict_files", "conflicting_files"):
        files += _strings(details.get(key))
    checks: list[FailedCheck] = []
    for key in ("checks", "failed_checks", "failed"):
        raw = details.get(key)
        for item in raw if isinstance(raw, list) else []:
            check = _check(item)
            if check is not None and check.state.lower() not in ("success", "passed", "neutral"):
                checks.append(check)
    bisection = details.get("bisection")
    missing: list[str] = []
    for key in ("missing", "missing_checks"):
        missing += _strings(details.get(key))
    return BlockInfo(
        files=list(dict.fromkeys(files)),
        checks=checks,
        missing=list(dict.fromkeys(missing)),
        message=_text(details.get("message") or details.get("error")),
        diagnosis=_text(details.get("diagnosis")),
        output=_text(details.get("output_tail") or details.get("output")),
        base_sha=_sha(details.get("base_sha")),
        integration_sha=_sha(details.get("integration_sha")),
        integration_branch=_text(details.get("integration_branch")).strip(),
        bisection_batch=_strings(bisection.get("batch")) if isinstance(bisection, dict) else [],
        reruns=_count(details.get("reruns")),
        rerun_refused=_strings(details.get("rerun_refused")),
        rerun_timed_out=_strings(details.get("rerun_timed_out")),
    )


_SHA_RE = re.compile(r"[0-9a-f]{40}")


def _sha(value: object) -> str:
    """A 40-hex sha, or "" (a producer's free-form value is not shown as a commit)."""
    return value if isinstance(value, str) and _SHA_RE.fullmatch(value) else ""


class FollowupStateError(ValueError):
    """A claim or resolve the follow-up's status does not allow; names both."""


class Followup(BaseModel):
    """A blocked candidate's todo, as stored and as the API returns it."""

    model_config = ConfigDict(frozen=True)

    id: FollowupId
    repo: Repo
    slug: Slug
    branch: str
    sha: Sha
    base: str | None = None
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)
    blocked_at: datetime
    event_id: str
    status: FollowupStatus = FollowupStatus.OPEN
    previous_id: FollowupId | None = None
    created_at: datetime
    updated_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def reason_text(self) -> str:
        return reason_text(self.reason)

    def info(self) -> BlockInfo:
        return block_info(self.details)


def from_blocked(envelope: Envelope, *, previous_id: str | None, now: datetime) -> Followup:
    """The follow-up an `integration_blocked` event asks for (status open)."""
    if envelope.name is not EventName.INTEGRATION_BLOCKED:
        raise ValueError(f"a follow-up comes from integration_blocked, not {envelope.name}")
    p = envelope.payload
    details = dict(p["details"]) if isinstance(p.get("details"), dict) else {}
    # The integrator names the commits of the attempt beside the details (extra fields).
    for key in ("base_sha", "integration_sha", "integration_branch"):
        if isinstance(p.get(key), str) and p[key]:
            details.setdefault(key, p[key])
    base = p.get("base")
    return Followup(
        id=str(p["followup_id"]),
        repo=str(p["repo"]),
        slug=str(p["slug"]),
        branch=str(p["branch"]),
        sha=str(p["sha"]),
        base=base if isinstance(base, str) else None,
        reason=str(p["reason"]),
        details=details,
        blocked_at=datetime.fromisoformat(str(p["blocked_at"])),
        event_id=envelope.id,
        previous_id=previous_id if previous_id != p["followup_id"] else None,
        created_at=now,
        updated_at=now,
    )


def claim(followup: Followup, by: str, at: datetime) -> Followup:
    """open → claimed. Claiming again by the same person changes nothing; by someone else, or
    claiming a resolved follow-up, is refused."""
    by = by.strip()
    if not by:
        raise FollowupStateError("a claim needs the name of who claims it")
    if followup.status is FollowupStatus.RESOLVED:
        raise FollowupStateError(f"follow-up {followup.id} is resolved; it cannot be claimed")
    if followup.status is FollowupStatus.CLAIMED:
        if followup.claimed_by == by:
            return followup
        raise FollowupStateError(
            f"follow-up {followup.id} is already claimed by {followup.claimed_by}"
        )
    return followup.model_copy(
        update={
            "status": FollowupStatus.CLAIMED,
            "claimed_by": by,
            "claimed_at": at,
            "updated_at": at,
        }
    )


def resolve(followup: Followup, by: str, at: datetime, resolution: str) -> Followup:
    """open/claimed → resolved; resolving a resolved follow-up changes nothing."""
    if followup.status is FollowupStatus.RESOLVED:
        return followup
    by = by.strip()
    if not by:
        raise FollowupStateError("a resolve needs the name of who resolves it")
    return followup.model_copy(
        update={
            "status": FollowupStatus.RESOLVED,
            "resolved_by": by,
            "resolved_at": at,
            "resolution": resolution.strip() or "resolved",
            "updated_at": at,
        }
    )
