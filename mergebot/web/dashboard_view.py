"""What the dashboard shows, as plain data (pure: no I/O, no aiohttp).

The dashboard reads the same status object as `GET /api/repos/<owner>/<repo>/queue` and
`mergebot status --json` (built once, in `mergebot.status`) and only rearranges it for people:
sections instead of one list, short shas, ages instead of timestamps, and the integration record
of the items that have one (the current attempt's checks, where a landed candidate put base).

Every string here is untrusted (branch names, slugs, reasons, check names, URLs from CI): the
templates escape HTML, and `safe_url` keeps only http(s) links so a `javascript:` URL reported
by a check can never become a link.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from mergebot.followups import Followup
from mergebot.queue import item_id
from mergebot.render import in_words, take

REFRESH_SECONDS = 10

# Sections of a repo page, by candidate status (SPEC §5 statuses plus `waiting`, SPEC §9).
ACTIVE = ("in_progress", "queued", "blocked")
FINISHED = ("integrated", "superseded", "cancelled")
COUNTED = ("queued", "in_progress", "waiting", "blocked")


def safe_url(value: object) -> str | None:
    """`value` when it is an absolute http(s) URL, else None (never a javascript: link)."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return value.strip()


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _span(seconds: float) -> str:
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def ago(when: datetime | None, now: datetime) -> str:
    """`3m ago`, `in 40s`; an empty string for no time."""
    if when is None:
        return ""
    delta = (now - when).total_seconds()
    if abs(delta) < 1:
        return "just now"
    return f"{_span(delta)} ago" if delta > 0 else f"in {_span(delta)}"


def exact(when: datetime | None) -> str:
    """The exact time, for the title attribute next to an age."""
    return when.strftime("%Y-%m-%d %H:%M:%S %Z") if when is not None else ""


def repo_path(repo: str) -> str:
    """The dashboard page of `repo` (owner and name are URL-quoted)."""
    return "/repos/" + "/".join(quote(part, safe="") for part in repo.split("/", 1))


def api_path(repo: str) -> str:
    return "/api" + repo_path(repo) + "/queue"


@dataclass(frozen=True)
class Links:
    """Where a row links to outside the dashboard: the forge's pull request."""

    forge_web_url: str | None = None  # e.g. "https://github.com" for GitHub repos

    def pull_request(self, repo: str, slug: str) -> str | None:
        if self.forge_web_url is None or not slug.startswith("pr-"):
            return None
        number = slug.removeprefix("pr-")
        if not number.isdigit():
            return None
        return f"{self.forge_web_url.rstrip('/')}/{repo}/pull/{number}"


@dataclass(frozen=True)
class Check:
    name: str
    kind: str
    state: str
    url: str | None
    seconds: str
    output_tail: str


def checks_of(raw: object) -> list[Check]:
    """Checks as the integrator records them (`CheckReport.to_dict`), read tolerantly."""
    if not isinstance(raw, list):
        return []
    found: list[Check] = []
    for entry in raw:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        seconds = entry.get("seconds")
        found.append(
            Check(
                name=str(entry["name"]),
                kind=str(entry.get("kind") or ""),
                state=str(entry.get("state") or "unknown"),
                url=safe_url(entry.get("url")),
                seconds=f"{seconds:.1f}s" if isinstance(seconds, int | float) else "",
                output_tail=str(entry.get("output_tail") or "")[-600:],
            )
        )
    return found


@dataclass(frozen=True)
class Integration:
    """The integrator's record of an item: its attempt, the commits and the checks."""

    attempt: int | None = None
    mode: str = ""
    integration_sha: str | None = None
    base_sha: str | None = None
    main_after: str | None = None
    branch: str | None = None
    checks: list[Check] = field(default_factory=list)
    running: str | None = None  # the check running now (a command line, or forge check names)
    running_kind: str = ""
    running_since: datetime | None = None

    @classmethod
    def from_record(cls, raw: Mapping[str, Any] | None) -> Integration | None:
        """From a queue item's `integration` fields or an attempt record (same names, except
        `commit` for the integration commit)."""
        if not raw:
            return None

        def text(name: str) -> str | None:
            value = raw.get(name)
            return value if isinstance(value, str) and value else None

        attempt = raw.get("attempt")
        running = raw.get("running")
        running = running if isinstance(running, Mapping) else {}
        return cls(
            attempt=attempt if isinstance(attempt, int) else None,
            mode=text("mode") or "",
            integration_sha=text("integration_sha") or text("commit"),
            base_sha=text("base_sha"),
            main_after=text("main_after"),
            branch=text("branch"),
            checks=checks_of(raw.get("checks")),
            running=str(running["name"]) if running.get("name") else None,
            running_kind=str(running.get("kind") or ""),
            running_since=parse_time(running.get("started_at")),
        )


@dataclass(frozen=True)
class FollowupView:
    """A stored follow-up as a row shows it: who owns it, what blocked, where the chain goes."""

    status: str
    owner: str | None  # who claimed or resolved it
    reason: str
    files: list[str]
    more_files: int
    checks: list[Check]
    missing: list[str]
    message: str
    previous_id: str | None

    @classmethod
    def of(cls, followup: Followup) -> FollowupView:
        info = followup.info()
        files, more = take(info.files, 5)
        return cls(
            status=followup.status.value,
            owner=followup.resolved_by or followup.claimed_by,
            reason=followup.reason_text,
            files=files,
            more_files=more,
            checks=[
                Check(c.name, "", c.state, safe_url(c.url), "", c.output[-600:])
                for c in info.checks[:5]
            ],
            missing=info.missing[:5],
            message=info.diagnosis or info.message,
            previous_id=followup.previous_id,
        )


@dataclass(frozen=True)
class Row:
    """One candidate as the dashboard shows it."""

    slug: str
    branch: str
    sha: str
    status: str
    position: int | None
    reasons: list[str]
    followup_id: str | None
    ready_at: str
    ready_exact: str
    updated_at: str
    updated_exact: str
    anchor: str | None  # `id` of the row: the slug, on the slug's first row only
    followup_anchor: str | None  # `followup-<id>`, on the follow-up's first row only
    pull_request: str | None
    integration: Integration | None
    followup: FollowupView | None = None
    car: int | None = None  # its car's position in the train
    stacked_on: str | None = None  # "base", or the slug(s) of the car before it
    eta: str = ""  # "about 4 min" until it lands, from recent check durations
    followup_url: str | None = None  # the follow-up's page
    pending_removal: str | None = None  # why it leaves the queue once the integrator sees it
    running_for: str = ""  # how long the running check has been running

    @property
    def label(self) -> str:
        """The status as people read it: an item the integrator ended in shadow mode was only
        decided, so it "would integrate" rather than "integrated"."""
        if self.status == "integrated" and self.integration and self.integration.mode == "shadow":
            return "would integrate"
        return self.status.replace("_", " ")


@dataclass(frozen=True)
class FrozenView:
    """Why base may not move now (status `frozen`): a freeze, a window, a red base."""

    kind: str
    reason: str
    by: str
    since: str
    until: str | None
    until_exact: str | None

    @classmethod
    def of(cls, raw: object, now: datetime) -> FrozenView | None:
        if not isinstance(raw, Mapping):
            return None
        until = parse_time(raw.get("until"))
        return cls(
            kind=str(raw.get("kind", "")),
            reason=str(raw.get("reason", "")),
            by=str(raw.get("by", "")),
            since=ago(parse_time(raw.get("since")), now),
            until=exact(until) if until else None,
            until_exact=until.isoformat() if until else None,
        )


@dataclass(frozen=True)
class RepoView:
    repo: str
    base: str
    mode: str
    # Why a repo configured live still runs in shadow (its cutover bar is not met), or None.
    held_in_shadow: str | None
    managed: bool
    path: str
    api: str
    followups: str  # the follow-ups page of the repo
    lease_owner: str | None
    lease_expires: str
    lease_exact: str
    dead_letters: int
    counts: dict[str, int]
    current: list[Row]
    queued: list[Row]
    blocked: list[Row]
    waiting: list[Row]
    recent: list[Row]
    ignored: dict[str, int]
    refusals: int
    window: int = 1
    max_depth: int = 1
    adaptive: bool = False
    frozen: FrozenView | None = None
    held: str | None = None  # the slug of the checked candidate waiting for base to open


def counts(status: Mapping[str, Any]) -> dict[str, int]:
    """How many candidates of each status, every counted status present (0 when none)."""
    found = Counter(str(c.get("status")) for c in status.get("candidates", []))
    return {name: found.get(name, 0) for name in (*COUNTED, *FINISHED)}


def candidate_id(candidate: Mapping[str, Any]) -> str:
    return item_id(str(candidate["slug"]), str(candidate["branch"]), str(candidate["sha"]))


def followup_path(repo: str, followup_id: str) -> str:
    return f"{repo_path(repo)}/followups/{quote(followup_id, safe='')}"


def repo_view(
    status: Mapping[str, Any],
    now: datetime,
    *,
    integrations: Mapping[str, Mapping[str, Any]] | None = None,
    links: Links | None = None,
    followups: Mapping[str, Followup] | None = None,
) -> RepoView:
    """The repo page from the status object (`mergebot.status.repo_status`).

    `integrations` maps a candidate's queue item id to its integration record: the attempt in
    progress for `in_progress` items, the item's recorded `integration` for the others;
    `followups` maps a follow-up id to the stored follow-up."""
    links = links or Links()
    followups = followups or {}
    integrations = integrations or {}
    repo = str(status["repo"])
    seen_slugs: set[str] = set()
    seen_followups: set[str] = set()
    rows: list[Row] = []
    for c in status.get("candidates", []):
        slug = str(c.get("slug", ""))
        followup = c.get("followup_id") or None
        anchor = slug if slug not in seen_slugs else None
        seen_slugs.add(slug)
        followup_anchor = None
        if followup is not None and followup not in seen_followups:
            followup_anchor = f"followup-{followup}"
            seen_followups.add(str(followup))
        ready = parse_time(c.get("ready_at"))
        updated = parse_time(c.get("updated_at"))
        integration = Integration.from_record(integrations.get(candidate_id(c)))
        since = integration.running_since if integration else None
        rows.append(
            Row(
                slug=slug,
                branch=str(c.get("branch", "")),
                sha=str(c.get("sha", "")),
                status=str(c.get("status", "")),
                position=c.get("position"),
                reasons=[in_words(str(r)) for r in c.get("reasons") or []],
                followup_id=str(followup) if followup is not None else None,
                ready_at=ago(ready, now),
                ready_exact=exact(ready),
                updated_at=ago(updated, now),
                updated_exact=exact(updated),
                anchor=anchor,
                followup_anchor=followup_anchor,
                pull_request=links.pull_request(repo, slug),
                integration=integration,
                followup_url=followup_path(repo, str(followup)) if followup is not None else None,
                pending_removal=c.get("pending_removal") or None,
                running_for=_span((now - since).total_seconds()) if since else "",
                followup=(
                    FollowupView.of(followups[str(followup)])
                    if followup is not None and str(followup) in followups
                    else None
                ),
                car=c.get("car") if isinstance(c.get("car"), int) else None,
                stacked_on=str(c["stacked_on"]) if c.get("stacked_on") else None,
                eta=_eta(c.get("eta_seconds")),
            )
        )
    raw_train = status.get("train")
    train: Mapping[str, Any] = raw_train if isinstance(raw_train, Mapping) else {}
    lease = status.get("lease")
    expires = parse_time(lease.get("expires_at")) if isinstance(lease, Mapping) else None
    refusals = status.get("refusals")
    cutover = status.get("cutover")
    held = isinstance(cutover, Mapping) and bool(cutover.get("held_back"))
    return RepoView(
        repo=repo,
        base=str(status.get("base", "")),
        mode=str(status.get("mode", "")),
        held_in_shadow=str(cutover.get("reason", "")) if held and cutover else None,
        managed=bool(status.get("managed", True)),
        path=repo_path(repo),
        api=api_path(repo),
        followups=f"{repo_path(repo)}/followups",
        lease_owner=str(lease.get("owner")) if isinstance(lease, Mapping) else None,
        lease_expires=ago(expires, now),
        lease_exact=exact(expires),
        dead_letters=int(status.get("dead_letters") or 0),
        counts=counts(status),
        current=[r for r in rows if r.status == "in_progress"],
        queued=sorted(
            (r for r in rows if r.status == "queued"), key=lambda r: r.position or 1 << 30
        ),
        blocked=[r for r in rows if r.status == "blocked"],
        waiting=[r for r in rows if r.status == "waiting"],
        recent=[r for r in rows if r.status in FINISHED],
        ignored={str(k): int(v) for k, v in (status.get("ignored") or {}).items()},
        refusals=int(refusals.get("total", 0)) if isinstance(refusals, Mapping) else 0,
        window=int(train.get("window") or 1),
        max_depth=int(train.get("max_depth") or 1),
        adaptive=bool(train.get("adaptive")),
        frozen=FrozenView.of(status.get("frozen"), now),
        held=_held_slug(status.get("held")),
    )


def _eta(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    return "under a minute" if seconds < 60 else f"about {_span(float(seconds))}"


def _held_slug(raw: object) -> str | None:
    slug = raw.get("slug") if isinstance(raw, Mapping) else None
    return str(slug) if slug else None


def overview(views: Iterable[RepoView]) -> dict[str, Any]:
    """The `/` page: every repo's summary, and the totals across them."""
    listed = list(views)
    totals = Counter[str]()
    for view in listed:
        totals.update(view.counts)
    return {
        "repos": listed,
        "totals": {name: totals.get(name, 0) for name in COUNTED},
        "dead_letters": sum(v.dead_letters for v in listed),
    }
