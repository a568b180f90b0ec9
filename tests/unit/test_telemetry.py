"""The queue's metrics: the fold of outcome events (values), and the documentation and the
Grafana dashboard kept equal to the catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mergebot.events import EVENT_MODELS, Envelope, envelope_for
from mergebot.telemetry import CATALOGUE, HistogramValue, OutcomeFold
from tests.cutoverkit import REPO, at

DOCS = Path(__file__).resolve().parents[2] / "docs"
SHA = "a" * 40


def env(name: str, source: str = "integrator", **payload: Any) -> Envelope:
    event = EVENT_MODELS[name].model_validate({"repo": REPO, **payload})
    return envelope_for(event, source=source)


def completed(minute: int, *, mode: str = "live", source: str = "integrator") -> Envelope:
    return env(
        "integration_completed", source=source, slug="pr-1", branch="b/pr-1", sha=SHA,
        main_before="1" * 40, main_after="2" * 40, integrated_at=at(minute), mode=mode,
        checks=[{"name": "pytest", "kind": "command", "state": "passed", "seconds": 42.0}],
    )  # fmt: skip


def blocked(reason: str) -> Envelope:
    checks = [{"name": "lint", "kind": "command", "state": "failed", "seconds": 3}]
    return env(
        "integration_blocked", slug="pr-2", branch="b/pr-2", sha="b" * 40, reason=reason,
        details={"checks": checks}, blocked_at=at(1), followup_id="f", mode="live",
    )  # fmt: skip


def test_outcomes_durations_and_freezes_fold_from_the_log() -> None:
    fold = OutcomeFold()
    for envelope in [
        env(
            "finalize_ready",
            source="api",
            slug="pr-1",
            branch="b/pr-1",
            sha=SHA,
            worker_session_id="w",
            orchestrator_session_id="o",
            ready_at=at(0),
        ),
        completed(10),
        blocked("checks_failed"),
        blocked("something new"),
        completed(11, mode="shadow"),
        completed(12, source="api"),  # a producer's outcome says nothing about mergebot
        env("queue_frozen", source="cli", base="main", reason="release", by="ops", at=at(2)),
    ]:
        fold.apply(envelope)

    assert dict(fold.counters) == {
        ("mergebot_outcomes", (REPO, "live", "integrated", "landed")): 1,
        ("mergebot_outcomes", (REPO, "live", "blocked", "checks_failed")): 1,
        ("mergebot_outcomes", (REPO, "live", "blocked", "other")): 1,
        ("mergebot_outcomes", (REPO, "shadow", "integrated", "landed")): 1,
        ("mergebot_freezes", (REPO,)): 1,
    }
    landed = fold.histograms[("mergebot_ready_to_landed_seconds", (REPO,))]
    assert (landed.count, landed.total) == (1, 600.0)
    passed = fold.histograms[("mergebot_check_duration_seconds", (REPO, "command", "passed"))]
    failed = fold.histograms[("mergebot_check_duration_seconds", (REPO, "command", "failed"))]
    assert (passed.count, passed.total) == (2, 84.0)  # the live and the shadow run
    assert (failed.count, failed.total) == (2, 6.0)


def test_histogram_buckets_are_cumulative() -> None:
    histogram = HistogramValue(buckets=(1, 10))
    for value in (0.5, 3, 3, 50):
        histogram.observe(value)
    assert histogram.cumulative() == [("1.0", 1.0), ("10.0", 3.0), ("+Inf", 4.0)]
    assert histogram.total == 56.5


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    table = text.split("## Every metric", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in table.splitlines():
        if line.startswith("| `mergebot_"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            found[cells[0].strip("`")] = (cells[1], tuple(re.findall(r"`(\w+)`", cells[2])))
    return found


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    assert documented() == {s.exposed: (s.kind.value, s.labels) for s in CATALOGUE}


def test_the_grafana_dashboard_uses_every_metric_and_only_those() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum)$", "", m)
        for e in exprs
        for m in re.findall(r"mergebot_\w+", e)
    }
    assert used == {s.exposed for s in CATALOGUE}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.name)
def test_label_names_are_prometheus_names(spec: Any) -> None:
    assert re.fullmatch(r"mergebot_[a-z_]+", spec.name)
    assert all(re.fullmatch(r"[a-z_]+", label) for label in spec.labels)
