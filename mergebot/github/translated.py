"""What translating one GitHub event yields: canonical events to store, a command to queue, a
check wake-up to publish, or the reason it is ignored. Pure values; the intake performs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from mergebot.events import CanonicalEvent, EventName, ReviewApproved
from mergebot.github.commands import CommandRequest
from mergebot.ids import is_repo

SOURCE = "github"
# The canonical orchestrator of GitHub candidates is GitHub itself (there is no agent session).
ORCHESTRATOR = "github"


class TranslationError(Exception):
    """A signed, well-formed JSON payload that still cannot be translated (fields missing, a sha
    that is not a sha…). Nothing is stored; the message lists every problem."""

    def __init__(self, event: str, problems: list[str]) -> None:
        self.event = event
        self.problems = problems
        super().__init__(f"cannot translate {event} payload: " + "; ".join(problems[:5]))


def _problems(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '<payload>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: dict[str, Any], event: str) -> M:
    """The payload as `model`, or a TranslationError naming every missing or wrong field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise TranslationError(event, _problems(exc)) from None


def make(model: type[CanonicalEvent], event: str, **fields: Any) -> CanonicalEvent:
    """A validated canonical event built from payload values (bad values → TranslationError)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise TranslationError(event, _problems(exc)) from None


def repo_of(full_name: str, event: str) -> str:
    if not is_repo(full_name):
        raise TranslationError(event, [f"repository.full_name: {full_name!r} is not owner/name"])
    return full_name


@dataclass(frozen=True)
class PendingApproval:
    """A `review_approved` still missing its `review_round`.

    The round is the reviewer's count of approvals on the pull request, which the payload does
    not carry; storage assigns it (stably per approval id, so a redelivery gets the same round).
    """

    event_name: ClassVar[EventName] = EventName.REVIEW_APPROVED

    repo: str
    slug: str
    sha: str
    reviewer: str
    approval_id: str
    approved_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def complete(self, review_round: int) -> ReviewApproved:
        event = make(
            ReviewApproved,
            "pull_request_review",
            repo=self.repo,
            slug=self.slug,
            approved_at=self.approved_at,
            review_round=review_round,
            reviewer_session_id=self.reviewer,
            sha=self.sha,
            **self.extra,
        )
        assert isinstance(event, ReviewApproved)
        return event

    def validated(self) -> PendingApproval:
        """Fail at translation time (not at storage time) when a field is not valid."""
        self.complete(1)
        return self


Draft = CanonicalEvent | PendingApproval


@dataclass(frozen=True)
class CheckSignal:
    """A forge reported on a commit: wake whoever waits for that commit's checks."""

    repo: str
    sha: str


@dataclass(frozen=True)
class Translation:
    repo: str | None
    events: tuple[Draft, ...] = ()
    command: CommandRequest | None = None
    signal: CheckSignal | None = None
    ignored: str | None = None

    @classmethod
    def ignore(cls, repo: str | None, reason: str) -> Translation:
        return cls(repo, ignored=reason)
