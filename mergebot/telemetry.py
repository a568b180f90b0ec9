"""What `/metrics` says about the queue (pure): the catalogue of metrics, and the fold of outcome
events into counters and histograms.

Two kinds of numbers, so every replica says the same and a restart loses nothing:

- **gauges and stored counters from the state at scrape time** (queue length, lease holder,
  takeovers, dead letters, the cutover record…), read from Redis by `mergebot.telemetry_state`
  when Prometheus asks — never kept in a process;
- **counters and histograms from the event log** (outcomes by reason, ready-to-landed and check
  durations, freezes): `OutcomeFold` folds every entry once per process, in log order, from the
  start of the log; a new process folds the whole log on its first scrape and then only new
  entries. The log is the system of record, so each replica arrives at the same values.

`CATALOGUE` is the list `docs/metrics.md` documents (a test keeps the two equal and finds every
metric in a scrape); a metric whose source is not built yet is exported with its documented
meaning rather than left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mergebot.events import Envelope, EventName


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # without the `_total` a counter gets in the exposition
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def exposed(self) -> str:
        """The name as it appears in the text format (counters end in `_total`)."""
        return f"{self.name}_total" if self.kind is Kind.COUNTER else self.name


# Durations from seconds to a working day: checks run seconds to an hour, queues wait longer.
DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400,
)  # fmt: skip

# Closed sets of label values: anything else is counted as "other", so input cannot grow them.
BLOCK_REASONS = frozenset(
    {"merge_conflict", "checks_failed", "checks_missing", "checks_timeout", "push_rejected"}
)
CHECK_KINDS = frozenset({"command", "required"})
CHECK_STATES = frozenset({"passed", "failed", "timeout", "missing", "pending", "would_wait"})
OTHER = "other"
# Outcome events count only when mergebot's integrator wrote them: a producer may post an
# `integration_*` event through the API (replay records it), but it says nothing about mergebot.
INTEGRATOR_SOURCE = "integrator"

QUEUE_STATUSES = ("waiting", "queued", "in_progress", "blocked")

CATALOGUE: tuple[MetricSpec, ...] = (
    # -- intake (counted by the web app that answered) ----------------------------------------
    MetricSpec("mergebot_events_accepted", Kind.COUNTER, ("source", "name"),
               "Events stored in the event log (new, not duplicates), by source and event name."),
    MetricSpec("mergebot_events_duplicate", Kind.COUNTER, ("source", "name"),
               "Events whose id was already stored with the same payload (stored once)."),
    MetricSpec("mergebot_events_refused", Kind.COUNTER, ("source", "name", "status", "reason"),
               "Events or requests refused, by source, event name, HTTP status and reason."),
    MetricSpec("mergebot_http_requests", Kind.COUNTER, ("method", "route", "status"),
               "HTTP requests answered, by method, route and status."),
    MetricSpec("mergebot_requests_shed", Kind.COUNTER, ("path",),
               "Ingest requests answered 503 at once because too many were in flight, by path."),
    # -- state at scrape time ------------------------------------------------------------------
    MetricSpec("mergebot_queue_length", Kind.GAUGE, ("repo", "status"),
               "Candidates of a managed repo by status: waiting (not READY yet), queued, "
               "in_progress, blocked."),
    MetricSpec("mergebot_lease_holder", Kind.GAUGE, ("repo", "owner"),
               "1 with the holder's owner id while the integration lease is held; "
               "0 with owner \"\" while it is free."),
    MetricSpec("mergebot_lease_takeovers", Kind.COUNTER, ("repo",),
               "Integration leases taken while the previous holder never released its own "
               "(it crashed or lost its lease)."),
    MetricSpec("mergebot_train_window", Kind.GAUGE, ("repo",),
               "How many cars may be in flight: pipeline.depth, or the adaptive window the "
               "lease holder uses now."),
    MetricSpec("mergebot_train_cars_in_flight", Kind.GAUGE, ("repo",),
               "Cars of the train being built or checked now (0 without a lease holder)."),
    MetricSpec("mergebot_dead_letters", Kind.GAUGE, ("repo",),
               "Notifications no sink would take after every attempt (waiting for a retry)."),
    MetricSpec("mergebot_cutover_held_back", Kind.GAUGE, ("repo",),
               "1 while a repo configured live is held in shadow by its cutover bar, else 0."),
    MetricSpec("mergebot_cutover_parity", Kind.GAUGE, ("repo",),
               "Share of compared shadow decisions that agreed with people, as last judged "
               "(only for repos judged)."),
    MetricSpec("mergebot_queue_frozen", Kind.GAUGE, ("repo", "kind"),
               "1 while base may not move for this kind of hold: frozen (by a person), window "
               "(a freeze window), red_base (a clearance check failed on the base tip), "
               "base_pending (clearance not finished); else 0."),
    MetricSpec("mergebot_flaky_checks", Kind.COUNTER, ("repo",),
               "Checks that failed and then passed on the same commit when run again "
               "(checks.retry_failed), every check of the repo counted."),
    # -- from the event log --------------------------------------------------------------------
    MetricSpec("mergebot_outcomes", Kind.COUNTER, ("repo", "mode", "outcome", "reason"),
               "Integration outcomes recorded by mergebot: outcome integrated (reason landed) "
               "or blocked (reason merge_conflict, checks_failed, checks_missing, "
               "checks_timeout, push_rejected, other); mode live or shadow."),
    MetricSpec("mergebot_ready_to_landed_seconds", Kind.HISTOGRAM, ("repo",),
               "From a candidate's ready_at to base moving to it (live landings only)."),
    MetricSpec("mergebot_check_duration_seconds", Kind.HISTOGRAM, ("repo", "kind", "state"),
               "How long each check of an integration took, by kind (command, required) "
               "and result (passed, failed, timeout…)."),
    MetricSpec("mergebot_freezes", Kind.COUNTER, ("repo",),
               "Freezes of a repo's queue (queue_frozen events)."),
)  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """One value of one metric: `name` is a catalogue name, `labels` in its label order."""

    name: str
    labels: tuple[str, ...]
    value: float


@dataclass
class HistogramValue:
    """Observations of one label set: counts per bucket upper bound (not cumulative), sum."""

    buckets: Sequence[float] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        index = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        self.counts[index] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """`(le, cumulative count)` pairs, `+Inf` last, as the text format wants them."""
        counts = self.counts or [0] * (len(self.buckets) + 1)
        pairs: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*map(str, map(float, self.buckets)), "+Inf"], counts, strict=True):
            running += count
            pairs.append((bound, float(running)))
        return pairs


def _closed(value: object, allowed: frozenset[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass
class OutcomeFold:
    """Counters and histograms from the event log, folded one envelope at a time, in order."""

    counters: dict[tuple[str, tuple[str, ...]], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    histograms: dict[tuple[str, tuple[str, ...]], HistogramValue] = field(default_factory=dict)
    # (repo, slug, sha) -> ready_at of the candidates not landed yet.
    _ready: dict[tuple[str, str, str], datetime] = field(default_factory=dict)

    def _observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self.histograms.setdefault((name, labels), HistogramValue()).observe(max(value, 0.0))

    def apply(self, envelope: Envelope) -> None:
        payload = envelope.payload
        repo = str(payload.get("repo", ""))
        match envelope.name:
            case EventName.FINALIZE_READY:
                ready_at = _time(payload.get("ready_at"))
                if ready_at is not None:
                    key = (repo, str(payload.get("slug")), str(payload.get("sha")))
                    self._ready[key] = min(ready_at, self._ready.get(key, ready_at))
            case EventName.INTEGRATION_COMPLETED if envelope.source == INTEGRATOR_SOURCE:
                self._completed(repo, payload)
            case EventName.INTEGRATION_BLOCKED if envelope.source == INTEGRATOR_SOURCE:
                mode = "shadow" if payload.get("mode") == "shadow" else "live"
                reason = _closed(payload.get("reason"), BLOCK_REASONS)
                self.counters[("mergebot_outcomes", (repo, mode, "blocked", reason))] += 1
                details = payload.get("details")
                checks = details.get("checks") if isinstance(details, Mapping) else None
                self._checks(repo, checks)
            case EventName.QUEUE_FROZEN:
                self.counters[("mergebot_freezes", (repo,))] += 1
            case _:
                pass

    def _completed(self, repo: str, payload: Mapping[str, Any]) -> None:
        mode = "shadow" if payload.get("mode") == "shadow" else "live"
        self.counters[("mergebot_outcomes", (repo, mode, "integrated", "landed"))] += 1
        self._checks(repo, payload.get("checks"))
        key = (repo, str(payload.get("slug")), str(payload.get("sha")))
        ready_at = self._ready.pop(key, None) if mode == "live" else None
        landed_at = _time(payload.get("integrated_at"))
        moved = payload.get("main_before") != payload.get("main_after")
        if ready_at is not None and landed_at is not None and moved:
            seconds = (landed_at - ready_at).total_seconds()
            self._observe("mergebot_ready_to_landed_seconds", (repo,), seconds)

    def _checks(self, repo: str, checks: object) -> None:
        if not isinstance(checks, list):
            return
        for check in checks:
            if not isinstance(check, Mapping) or not isinstance(check.get("seconds"), int | float):
                continue
            labels = (
                repo,
                _closed(check.get("kind"), CHECK_KINDS),
                _closed(check.get("state"), CHECK_STATES),
            )
            self._observe("mergebot_check_duration_seconds", labels, float(check["seconds"]))
