"""`push` → `branch_pushed`.

Tag pushes are ignored. A branch deletion is recorded as `branch_pushed` with the all-zero sha
(git's own notation for "no commit", as in the `before`/`after` of a push) and `deleted: true`:
the record that the branch is gone, which matches no candidate sha, so a candidate of that branch
can no longer pass the reachability check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mergebot.config import REMOTE_NAME
from mergebot.events import BranchPushed
from mergebot.github.payloads import PushEvent
from mergebot.github.translated import Translation, TranslationError, make, parse, repo_of

EVENT = "push"
ZERO_SHA = "0" * 40
_HEADS = "refs/heads/"


def _pushed_at(value: int | str | None) -> str:
    """`repository.pushed_at` is a Unix timestamp in push payloads."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, str) and value:
        return value
    raise TranslationError(EVENT, ["repository.pushed_at: missing"])


def translate_push(payload: dict[str, Any]) -> Translation:
    event = parse(PushEvent, payload, EVENT)
    repo = repo_of(event.repository.full_name, EVENT)
    if not event.ref.startswith(_HEADS):
        kind = "tag" if event.ref.startswith("refs/tags/") else "non-branch"
        return Translation.ignore(repo, f"{kind} push ({event.ref})")
    branch = event.ref.removeprefix(_HEADS)
    pusher = event.pusher.name or (event.sender.login if event.sender else "")
    extra: dict[str, Any] = (
        {"deleted": True, "before": event.before} if event.deleted else {"forced": event.forced}
    )
    pushed = make(
        BranchPushed,
        EVENT,
        repo=repo,
        branch=branch,
        sha=ZERO_SHA if event.deleted else event.after,
        remote=REMOTE_NAME,
        pushed_at=_pushed_at(event.repository.pushed_at),
        pusher=pusher,
        **extra,
    )
    return Translation(repo, events=(pushed,))
