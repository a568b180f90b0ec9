"""Canonical events: the one vocabulary every input is translated into (SPEC §3).

Pure: pydantic models and functions, no I/O. Webhook translation, the canonical API, reconciliation
and the integrator all produce these; the readiness projection, the queue and the notifier consume
them from the event log.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union, cast

from pydantic import (
    AfterValidator,
    AliasPath,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)

from mergebot.ids import REPO_PATTERN, SHA_PATTERN, SLUG_PATTERN, branch_problem


class EventName(StrEnum):
    REVIEW_APPROVED = "review_approved"
    REVIEW_DISMISSED = "review_dismissed"
    FINALIZE_READY = "finalize_ready"
    BRANCH_PUSHED = "branch_pushed"
    CANDIDATE_WITHDRAWN = "candidate_withdrawn"
    INTEGRATION_COMPLETED = "integration_completed"
    INTEGRATION_BLOCKED = "integration_blocked"
    RESUME_REQUESTED = "resume_requested"
    PRIORITY_SET = "priority_set"
    QUEUE_FROZEN = "queue_frozen"
    QUEUE_UNFROZEN = "queue_unfrozen"


_TAXONOMY_PREFIX = "domain.software-development."
TAXONOMY: dict[EventName, str] = {
    EventName.REVIEW_APPROVED: _TAXONOMY_PREFIX + "review.approved",
    EventName.REVIEW_DISMISSED: _TAXONOMY_PREFIX + "review.dismissed",
    EventName.FINALIZE_READY: _TAXONOMY_PREFIX + "deployment.started",
    EventName.BRANCH_PUSHED: _TAXONOMY_PREFIX + "branch.pushed",
    EventName.CANDIDATE_WITHDRAWN: _TAXONOMY_PREFIX + "deployment.cancelled",
    EventName.INTEGRATION_COMPLETED: _TAXONOMY_PREFIX + "deployment.completed",
    EventName.INTEGRATION_BLOCKED: _TAXONOMY_PREFIX + "deployment.failed",
    EventName.RESUME_REQUESTED: _TAXONOMY_PREFIX + "deployment.resumed",
    EventName.PRIORITY_SET: _TAXONOMY_PREFIX + "deployment.prioritized",
    EventName.QUEUE_FROZEN: _TAXONOMY_PREFIX + "deployment.frozen",
    EventName.QUEUE_UNFROZEN: _TAXONOMY_PREFIX + "deployment.unfrozen",
}


def _require_text_timestamp(value: object) -> object:
    # Lax pydantic would accept a Unix number as an aware datetime; the contract says ISO 8601.
    if isinstance(value, datetime | str):
        return value
    raise ValueError("must be an ISO 8601 timestamp string with a timezone offset")


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-23:59 is past the last datetime once in UTC
        raise ValueError("the timestamp is out of range once converted to UTC") from None


def _no_control_characters(value: str) -> str:
    if _has_control(value):
        raise ValueError("must not contain control characters")
    return value


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _check_branch(value: str) -> str:
    problem = branch_problem(value)
    if problem:
        raise ValueError(problem)
    return value


NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
# An id another system gave (a session, a follow-up): it names things, so no control characters.
Identifier = Annotated[NonBlank, AfterValidator(_no_control_characters)]
RepoName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=REPO_PATTERN)]
SlugName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SLUG_PATTERN)]
CommitSha = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SHA_PATTERN)]
BranchName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_check_branch)
]
Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_require_text_timestamp), AfterValidator(_to_utc)
]


MAX_REVIEW_ROUND = 1_000_000


class CanonicalEvent(BaseModel):
    """Base of every event: scoped to a repo; unknown fields are kept, not dropped."""

    model_config = ConfigDict(extra="allow", frozen=True)
    event_name: ClassVar[EventName]

    repo: RepoName


class ReviewApproved(CanonicalEvent):
    event_name = EventName.REVIEW_APPROVED
    slug: SlugName
    approved_at: Timestamp
    review_round: Annotated[StrictInt, Field(ge=1, le=MAX_REVIEW_ROUND)]
    reviewer_session_id: Identifier
    sha: CommitSha | None = None


class ReviewDismissed(CanonicalEvent):
    event_name = EventName.REVIEW_DISMISSED
    slug: SlugName
    dismissed_at: Timestamp
    reviewer_session_id: Identifier
    sha: CommitSha | None = None


class FinalizeReady(CanonicalEvent):
    event_name = EventName.FINALIZE_READY
    slug: SlugName
    branch: BranchName
    sha: CommitSha
    worker_session_id: Identifier
    orchestrator_session_id: Identifier
    ready_at: Timestamp


class BranchPushed(CanonicalEvent):
    event_name = EventName.BRANCH_PUSHED
    branch: BranchName
    sha: CommitSha
    remote: NonBlank
    pushed_at: Timestamp
    pusher: NonBlank


class WithdrawReason(StrEnum):
    CLOSED = "closed"
    DRAFT = "draft"
    BASE_CHANGED = "base_changed"
    CANCELLED = "cancelled"


class CandidateWithdrawn(CanonicalEvent):
    event_name = EventName.CANDIDATE_WITHDRAWN
    slug: SlugName
    reason: WithdrawReason
    at: Timestamp


class IntegrationCompleted(CanonicalEvent):
    event_name = EventName.INTEGRATION_COMPLETED
    slug: SlugName
    branch: BranchName
    sha: CommitSha
    main_before: CommitSha
    main_after: CommitSha
    integrated_at: Timestamp
    checks: list[dict[str, Any]]


class IntegrationBlocked(CanonicalEvent):
    event_name = EventName.INTEGRATION_BLOCKED
    slug: SlugName
    branch: BranchName
    sha: CommitSha
    reason: NonBlank
    details: dict[str, Any]
    blocked_at: Timestamp
    followup_id: Identifier


class ResumeRequested(CanonicalEvent):
    event_name = EventName.RESUME_REQUESTED
    slug: SlugName
    requested_by: NonBlank
    at: Timestamp


MIN_PRIORITY = -1000
MAX_PRIORITY = 1000
Priority = Annotated[StrictInt, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)]
"""A slug's place in the queue: higher first, then `ready_at` (SPEC §5). Bounded, so a typo such
as `p=10000000000` is refused instead of silently outranking everything forever."""


def parse_priority(text: str) -> int:
    """A priority written by a person (`p=<n>`, `priority <n>`); ValueError saying what is
    accepted otherwise."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        value = None
    if value is None or not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(
            f"{text!r} is not a priority: a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}"
        )
    return value


class PrioritySet(CanonicalEvent):
    event_name = EventName.PRIORITY_SET
    slug: SlugName
    priority: Priority
    set_by: NonBlank
    at: Timestamp


class QueueFrozen(CanonicalEvent):
    """Base of (repo, base) must not move until a `queue_unfrozen` (or `until`, when given).

    Extra field `kind`: `clearance` when mergebot closed the queue itself because base is red
    (with `sha` and `check`); anything else is a freeze by a person."""

    event_name = EventName.QUEUE_FROZEN
    base: BranchName
    reason: NonBlank
    by: NonBlank
    at: Timestamp
    until: Timestamp | None = None


class QueueUnfrozen(CanonicalEvent):
    event_name = EventName.QUEUE_UNFROZEN
    base: BranchName
    by: NonBlank
    at: Timestamp


AnyEvent = (
    ReviewApproved
    | ReviewDismissed
    | FinalizeReady
    | BranchPushed
    | CandidateWithdrawn
    | IntegrationCompleted
    | IntegrationBlocked
    | ResumeRequested
    | PrioritySet
    | QueueFrozen
    | QueueUnfrozen
)

EVENT_MODELS: dict[EventName, type[CanonicalEvent]] = {
    model.event_name: model
    for model in (
        ReviewApproved,
        ReviewDismissed,
        FinalizeReady,
        BranchPushed,
        CandidateWithdrawn,
        IntegrationCompleted,
        IntegrationBlocked,
        ResumeRequested,
        PrioritySet,
        QueueFrozen,
        QueueUnfrozen,
    )
}

# The fields each model declares (`model_fields` is computed on every access).
_KNOWN_FIELDS: dict[EventName, frozenset[str]] = {
    name: frozenset(model.model_fields) for name, model in EVENT_MODELS.items()
}

RESERVED_KEYS = frozenset({"name", "id"})
MAX_ID_LENGTH = 200
# Limits on what one event may carry (SPEC §10): nesting a JSON library, pydantic or a reader
# can walk without recursing into an error, and extra (unknown, kept) fields that cannot grow the
# event log by megabytes per request. The extra-field budget is configurable
# (MERGEBOT_MAX_EXTRA_FIELD_BYTES).
MAX_DEPTH = 32
DEFAULT_MAX_EXTRA_BYTES = 64 * 1024


class EventError(Exception):
    """An input that is not a valid canonical event; `errors` lists every problem found.

    The shape of each error is pydantic's (`loc`, `msg`, `type`) plus `index` for list bodies, so
    clients of the canonical API see one format whether the problem is a field or the envelope.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<event>'}: {e['msg']}" for e in errors[:5]
        )
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid event: {summary}{more}")


def _error(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        _error(list(err["loc"]), err["msg"], err["type"])
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A validated event with the idempotency key its producer gave (if any). A dataclass, not
    a model: both fields are validated already, and ingest builds one per event."""

    id: str | None
    event: CanonicalEvent


def _walk_problems(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Nesting deeper than MAX_DEPTH, and strings or keys that are not Unicode text (a lone
    surrogate such as "\\ud800" cannot be encoded, stored or compared), found without recursion."""
    if _flat_text(raw):  # the usual event: nothing nested, every string encodable
        return []
    errors: list[dict[str, Any]] = []
    stack: list[tuple[object, list[str | int]]] = [(raw, [])]
    too_deep: set[str | int] = set()
    while stack and len(errors) < 50:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            if loc[0] not in too_deep:
                too_deep.add(loc[0])
                message = f"nested more than {MAX_DEPTH} levels deep"
                errors.append(_error(loc[:1], message, "too_deep"))
            continue
        if isinstance(value, str) and not _is_text(value):
            errors.append(_error(loc, "not valid Unicode text (a lone surrogate)", "surrogate"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not _is_text(key):
                    errors.append(_error(loc, "a key is not valid Unicode text", "surrogate"))
                    continue
                stack.append((item, [*loc, key]))
        elif isinstance(value, list):
            stack.extend((item, [*loc, index]) for index, item in enumerate(value))
    return errors


def _flat_text(raw: dict[str, Any]) -> bool:
    """No value nested and every key and string valid Unicode text: the walk would find
    nothing (a lone surrogate fails to encode in the joined text as it does alone)."""
    texts: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict | list) or not isinstance(key, str):
            return False
        texts.append(key)
        if isinstance(value, str):
            texts.append(value)
    return _is_text("".join(texts))


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _extra_size(fields: dict[str, Any], model: type[CanonicalEvent]) -> int:
    known = _KNOWN_FIELDS[model.event_name]
    if fields.keys() <= known:  # the usual event: nothing extra
        return 0
    unknown = {k: v for k, v in fields.items() if k not in known}
    return len(canonical_json(unknown).encode())


def plain_json(raw: bytes) -> bool:
    """True when a JSON body, as bytes, can hold neither a lone surrogate nor nesting deeper than
    MAX_DEPTH, so the events parsed from it need no walk (`parse_event(…, plain=True)`).

    ASCII without NUL is UTF-8 (UTF-16 and UTF-32 text of ASCII holds NUL bytes), so a lone
    surrogate could only come from an escape `\\uD…`; and a value nested deeper than MAX_DEPTH
    needs more brackets than the whole body has. A few scans of the bytes in C, instead of a walk
    of every event in Python; a body that fails the test is walked, as before."""
    return (
        raw.isascii()
        and b"\x00" not in raw
        and b"\\ud" not in raw.lower()
        and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH
    )


def parse_event(
    raw: object, *, max_extra_bytes: int = DEFAULT_MAX_EXTRA_BYTES, plain: bool = False
) -> ParsedEvent:
    """Validate one flat event object `{"name": …, "id": …, **fields}`, reporting every problem.
    `plain`: it came from a body `plain_json` passed, so its shape needs no walk."""
    if not isinstance(raw, dict):
        raise EventError([_error([], "an event must be a JSON object", "type_error")])
    shape = [] if plain else _walk_problems(raw)
    if shape:  # nothing else is looked at: the rest of the checks would trip over it
        raise EventError(shape)
    errors: list[dict[str, Any]] = []
    name = raw.get("name")
    model: type[CanonicalEvent] | None = None
    if not isinstance(name, str) or name not in EVENT_MODELS:
        known = ", ".join(sorted(EVENT_MODELS))
        errors.append(_error(["name"], f"unknown event name {name!r}; one of: {known}", "name"))
    else:
        model = EVENT_MODELS[EventName(name)]
    event_id = raw.get("id")
    if event_id is not None and (
        not isinstance(event_id, str)
        or not event_id.strip()
        or len(event_id) > MAX_ID_LENGTH
        or _has_control(event_id)
    ):
        message = f"id must be a non-blank string of at most {MAX_ID_LENGTH}, no control characters"
        errors.append(_error(["id"], message, "id"))
        event_id = None
    fields = {k: v for k, v in raw.items() if k not in RESERVED_KEYS}
    event: CanonicalEvent | None = None
    if model is not None and (size := _extra_size(fields, model)) > max_extra_bytes:
        message = f"extra fields take {size} bytes as JSON; at most {max_extra_bytes} are kept"
        errors.append(_error([], message, "too_large"))
    elif model is not None:
        try:
            event = model.model_validate(fields)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc))
    if errors or event is None:
        raise EventError(errors)
    return ParsedEvent(id=event_id.strip() if isinstance(event_id, str) else None, event=event)


def parse_events_body(
    body: object, *, max_extra_bytes: int = DEFAULT_MAX_EXTRA_BYTES, plain: bool = False
) -> list[ParsedEvent]:
    """Validate a request body (one event or a list); every item is checked before failing.
    `plain`: the body's bytes passed `plain_json`."""
    items = body if isinstance(body, list) else [body]
    if isinstance(body, list) and not body:
        raise EventError([_error([], "the list of events is empty", "empty")])
    parsed: list[ParsedEvent] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_event(item, max_extra_bytes=max_extra_bytes, plain=plain))
        except EventError as exc:
            for err in exc.errors:
                errors.append({**err, "index": index} if isinstance(body, list) else err)
    if errors:
        raise EventError(errors)
    return parsed


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of range")
    return value


_STANDARD_JSON = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads_json(raw: str | bytes) -> Any:
    """Standard JSON only: Python's parser also takes NaN and Infinity (and turns 1e999 into
    infinity), which nothing else reads back — an event stored with one could never be replayed.
    Raises ValueError (or RecursionError for absurd nesting).

    What `json.loads(raw, parse_constant=…, parse_float=…)` does, with one decoder made once:
    given options, `json.loads` builds a decoder per call, half the cost of parsing an event."""
    if isinstance(raw, bytes):
        raw = raw.decode(json.detect_encoding(raw), "surrogatepass")
    elif raw.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", raw, 0)
    return _STANDARD_JSON.decode(raw)


# `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, with the encoder
# made once (given options, `json.dumps` builds one per call).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: object) -> str:
    """Stable JSON text, used for hashing and for comparing payloads of the same id."""
    return _CANONICAL_JSON.encode(value)


def content_id(name: EventName, payload: dict[str, Any]) -> str:
    """Idempotency key for an event whose producer gave none: equal content, equal id."""
    digest = hashlib.sha256(canonical_json({"name": name, "payload": payload}).encode()).hexdigest()
    return f"sha256:{digest[:40]}"


class Envelope(BaseModel):
    """An event as stored in the log: the payload plus where, when and under which key it came."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: EventName
    type: str
    source: str
    received_at: datetime
    payload: dict[str, Any]

    @property
    def repo(self) -> str:
        return str(self.payload["repo"])

    def event(self) -> AnyEvent:
        """The typed event; payloads are validated before they are stored, so this cannot fail."""
        model = EVENT_MODELS[self.name]
        return model.model_validate(self.payload)  # type: ignore[return-value]

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        return cls.model_validate_json(text)


class StoredEvent(NamedTuple):
    """What a replay folds of a stored envelope: its repo (as stored), name and typed event."""

    repo: str
    name: EventName
    event: CanonicalEvent


def _stored_model(model: type[CanonicalEvent]) -> type[BaseModel]:
    """An envelope whose payload is validated as `model` in the same pass, with the payload's
    `repo` as stored (what `Envelope.repo` answers): the fields are the envelope's own."""
    same: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in Envelope.model_fields.items()
        if name not in ("name", "payload")
    }
    return create_model(
        f"Stored{model.__name__}",
        __config__=ConfigDict(frozen=True),
        name=(cast(Any, Literal[model.event_name]), ...),
        event=(model, Field(validation_alias="payload")),
        repo=(str, Field(validation_alias=AliasPath("payload", "repo"))),
        **same,
    )


_STORED_MODELS: list[Any] = [_stored_model(model) for model in EVENT_MODELS.values()]
_STORED: TypeAdapter[Any] = TypeAdapter(
    cast(Any, Annotated[Union[tuple(_STORED_MODELS)], Discriminator("name")])  # noqa: UP007
)


def stored_event(text: str | bytes) -> StoredEvent | None:
    """The repo, name and event of a stored envelope, from its JSON in one parse (the envelope,
    then `Envelope.event()`, is two, the second from Python objects: about twice the cost); None
    when the envelope or its payload does not validate, and the caller reads it the two-step
    way, which says which of them failed and why."""
    try:
        found = _STORED.validate_json(text)
    except ValidationError:
        return None
    return StoredEvent(found.repo, found.name, cast(CanonicalEvent, found.event))


def envelope_for(
    event: CanonicalEvent,
    *,
    source: str,
    event_id: str | None = None,
    received_at: datetime | None = None,
) -> Envelope:
    """The envelope of an event already validated: built without validating again (every field
    is typed here, and the payload is the event's own JSON dump), as ingest does per event."""
    payload = event.model_dump(mode="json")
    name = event.event_name
    return Envelope.model_construct(
        id=event_id or content_id(name, payload),
        name=name,
        type=TAXONOMY[name],
        source=source,
        received_at=(received_at or datetime.now(UTC)).astimezone(UTC),
        payload=payload,
    )
