"""Reconciliation: make the event log agree with GitHub when webhooks went missing.

GitHub does not redeliver a failed webhook on its own and keeps failed deliveries only a few days,
so on start and then periodically mergebot lists the open pull requests of each managed GitHub
repo, with their head shas and reviews, and appends — with source `reconcile` — the canonical
events the log lacks. It does not translate anything itself: a pull request or a review from the
REST API is dressed as the webhook payload GitHub would have sent and handed to the very
translation the webhook uses, so both paths produce the same events.

What is "missing" is decided against the log (a pure comparison, `plan_repo`):
- an open, ready pull request whose head the log does not have as the slug's current head (or
  which the log has as closed/draft/moved away) → its `branch_pushed` + `finalize_ready`;
- a review GitHub lists that the log has no event for (by review id) → `review_approved` /
  `review_dismissed`;
- a pull request the log has as an open candidate that is not open any more → what its closing
  (or draft, or base change) translates to, usually `candidate_withdrawn`.
Event ids are derived from what they describe, and the comparison runs against the log after the
previous appends, so a second pass finds nothing to add.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from mergebot.config import Forge as ForgeKind
from mergebot.events import Envelope, EventName, WithdrawReason
from mergebot.forge.base import PullLister, PullSnapshot
from mergebot.forge.errors import ForgeError
from mergebot.github.command_worker import forge_for
from mergebot.github.intake import perform
from mergebot.github.summary import SlugSummary, summarize
from mergebot.github.translate import translate
from mergebot.github.translated import Draft, Translation, TranslationError
from mergebot.ids import pr_number
from mergebot.runtime import Runtime
from mergebot.services import keep_running, sleep_until_stopped
from mergebot.store.eventlog import EventConflictError

log = logging.getLogger("mergebot.github.reconcile")

SOURCE = "reconcile"
_GONE = frozenset({WithdrawReason.CLOSED, WithdrawReason.DRAFT, WithdrawReason.BASE_CHANGED})


@dataclass(frozen=True)
class Addition:
    """Events to append under one id prefix (`reconcile:<what>`)."""

    id_prefix: str
    drafts: tuple[Draft, ...]
    why: str


@dataclass
class LogView:
    """What the log already knows about a repo's pull requests."""

    slugs: dict[str, SlugSummary] = field(default_factory=dict)
    review_ids: set[tuple[EventName, int]] = field(default_factory=set)


def view_of(envelopes: Sequence[Envelope]) -> LogView:
    view = LogView()
    slugs = {str(e.payload.get("slug")) for e in envelopes if pr_number(str(e.payload.get("slug")))}
    for slug in slugs:
        view.slugs[slug] = summarize(slug, envelopes)
    for env in envelopes:
        review_id = env.payload.get("review_id")
        if env.name in (EventName.REVIEW_APPROVED, EventName.REVIEW_DISMISSED) and isinstance(
            review_id, int
        ):
            view.review_ids.add((env.name, review_id))
    return view


def _payload(action: str, repo_body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A webhook payload as GitHub would have sent it for this REST state."""
    return {"action": action, "repository": repo_body, **fields}


def _repository(pull: dict[str, Any], repo: str) -> dict[str, Any]:
    base_repo = (pull.get("base") or {}).get("repo")
    return base_repo if isinstance(base_repo, dict) else {"full_name": repo}


def _translate(event: str, payload: dict[str, Any], base_of: Any, what: str) -> Translation | None:
    try:
        translation = translate(event, payload, base_of)
    except TranslationError as exc:
        log.warning("reconcile_untranslatable what=%s problem=%s", what, exc)
        return None
    return None if translation.ignored is not None else translation


def _key(*parts: object) -> str:
    text = ":".join(str(p) for p in parts)
    return text if len(text) <= 150 else hashlib.sha256(text.encode()).hexdigest()[:40]


def plan_open_pull(repo: str, snapshot: PullSnapshot, view: LogView, base: str) -> list[Addition]:
    pull = snapshot.pull
    number = int(pull["number"])
    slug = f"pr-{number}"
    head = str(pull["head"]["sha"])
    summary = view.slugs.get(slug)
    repository = _repository(pull, repo)
    sender = pull.get("user") or {"login": "unknown"}
    additions: list[Addition] = []

    def base_of(_: str) -> str:
        return base

    stale_head = summary is None or summary.sha != head
    reopened = summary is not None and summary.withdrawn in _GONE
    if pull.get("draft"):
        if summary is not None and summary.sha is not None and summary.withdrawn is None:
            payload = _payload("converted_to_draft", repository, pull_request=pull, sender=sender)
            translation = _translate("pull_request", payload, base_of, slug)
            if translation is not None:
                additions.append(
                    Addition(
                        f"reconcile:{_key(slug, 'draft', head)}", translation.events, "now a draft"
                    )
                )
    elif stale_head or reopened:
        payload = _payload("synchronize", repository, pull_request=pull, sender=sender)
        translation = _translate("pull_request", payload, base_of, slug)
        if translation is not None:
            why = "head unknown to the log" if stale_head else "open again"
            additions.append(
                Addition(
                    f"reconcile:{_key(slug, 'head', head, pull.get('updated_at'))}",
                    translation.events,
                    why,
                )
            )
    for review in snapshot.reviews:
        state = str(review.get("state", "")).lower()
        review_id = review.get("id")
        if not isinstance(review_id, int):
            continue
        if state == "approved":
            name, action = EventName.REVIEW_APPROVED, "submitted"
        elif state == "changes_requested":
            name, action = EventName.REVIEW_DISMISSED, "submitted"
        elif state == "dismissed":
            name, action = EventName.REVIEW_DISMISSED, "dismissed"
        else:
            continue
        if (name, review_id) in view.review_ids:
            continue
        payload = _payload(
            action,
            repository,
            review=review,
            pull_request=pull,
            sender=review.get("user") or sender,
        )
        translation = _translate("pull_request_review", payload, base_of, f"review {review_id}")
        if translation is not None:
            additions.append(
                Addition(
                    f"reconcile:{_key(slug, 'review', review_id, state)}",
                    translation.events,
                    f"review {review_id} ({state}) unknown to the log",
                )
            )
    return additions


def open_candidates(view: LogView, open_numbers: Iterable[int]) -> list[str]:
    """Slugs the log has as open candidates that GitHub does not list as open any more."""
    still_open = {f"pr-{n}" for n in open_numbers}
    return sorted(
        slug
        for slug, summary in view.slugs.items()
        if summary.sha is not None
        and summary.withdrawn is None
        and summary.outcome != "integrated"
        and slug not in still_open
    )


def plan_gone_pull(repo: str, pull: dict[str, Any], base: str) -> list[Addition]:
    """A pull request the log has as a candidate but GitHub does not list as open."""
    slug = f"pr-{pull['number']}"
    repository = _repository(pull, repo)
    sender = pull.get("user") or {"login": "unknown"}

    def base_of(_: str) -> str:
        return base

    extra: dict[str, Any] = {}
    if pull.get("state") == "closed":
        action = "closed"
    elif pull.get("draft"):
        action = "converted_to_draft"
    elif (pull.get("base") or {}).get("ref") != base:
        action, extra = "edited", {"changes": {"base": {"ref": {"from": base}}}}
    else:
        return []
    payload = _payload(action, repository, pull_request=pull, sender=sender, **extra)
    translation = _translate("pull_request", payload, base_of, slug)
    if translation is None:
        return []
    when = pull.get("closed_at") or pull.get("updated_at")
    return [
        Addition(
            f"reconcile:{_key(slug, action, when)}",
            translation.events,
            f"pull request {action} behind our back",
        )
    ]


@dataclass(frozen=True)
class RepoResult:
    repo: str
    appended: int
    reasons: tuple[str, ...]


async def reconcile_repo(runtime: Runtime, forge: PullLister, repo: str) -> RepoResult:
    """One pass over one repo: read GitHub and the log, append what the log is missing."""
    base = runtime.server_config.repo(repo).base_branch
    snapshots = await forge.open_pulls(repo)
    envelopes = [entry.envelope async for entry in runtime.eventlog.replay(repo=repo)]
    view = view_of(envelopes)
    additions: list[Addition] = []
    for snapshot in snapshots:
        additions += plan_open_pull(repo, snapshot, view, base)
    for slug in open_candidates(view, (int(s.pull["number"]) for s in snapshots)):
        number = pr_number(slug)
        assert number is not None
        pull = await forge.pull(repo, number)
        if pull is not None:
            additions += plan_gone_pull(repo, pull, base)
    appended = 0
    for addition in additions:
        try:
            result = await perform(
                runtime,
                Translation(repo, events=addition.drafts),
                id_prefix=addition.id_prefix,
                source=SOURCE,
            )
        except EventConflictError as exc:
            log.warning("reconcile_conflict repo=%s id=%s", repo, exc.event_id)
            continue
        fresh = sum(1 for r in result.stored if not r.duplicate)
        appended += fresh
        log.info(
            "reconcile_appended repo=%s id=%s events=%d why=%s",
            repo,
            addition.id_prefix,
            fresh,
            addition.why,
        )
    return RepoResult(repo, appended, tuple(a.why for a in additions))


def github_repos(runtime: Runtime) -> list[str]:
    """The repos listed in the server file with `forge = "github"` (a `manage_all_repos`
    installation's repos are reconciled once they appear in the file)."""
    config = runtime.server_config
    return sorted(r for r in config.repos if config.repo(r).forge is ForgeKind.GITHUB)


async def reconcile_all(runtime: Runtime) -> list[RepoResult]:
    results = []
    for repo in github_repos(runtime):
        try:
            forge = await forge_for(runtime, repo)
            if not isinstance(forge, PullLister):
                continue
            results.append(await reconcile_repo(runtime, forge, repo))
        except (ForgeError, RedisError, OSError, RuntimeError) as exc:
            log.warning("reconcile_failed repo=%s error=%s: %s", repo, type(exc).__name__, exc)
    return results


async def reconcile_service(runtime: Runtime, stop: asyncio.Event) -> None:
    """On start, then every `MERGEBOT_RECONCILE_INTERVAL_SECONDS` (default 10 minutes)."""
    interval = runtime.settings.reconcile_interval_seconds

    async def step() -> None:
        await reconcile_all(runtime)
        await sleep_until_stopped(stop, interval)

    await keep_running(stop, step, name="reconcile")
