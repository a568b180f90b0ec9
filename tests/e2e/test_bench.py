"""The benchmarks stay runnable: each one, at a tiny size, finishes and prints its cost table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("eventlog_append.py", ["--events", "200", "--batch", "20", "--rounds", "2"],
         "idempotency overhead"),
        ("events_api.py", ["--requests", "40", "--batch", "5", "--rounds", "2"],
         ("stored 130 events, as expected", "refused", "the client's own lag")),
        ("projection_fold.py", ["--events", "120"], "projection JSON"),
        ("replay.py", ["--events", "300", "--repos", "2", "--rounds", "1"],
         "no difference from the stored projection"),
        ("at_scale.py", ["--candidates", "40", "--repos", "2", "--big", "20", "--rounds", "1"],
         "60 queued"),
        ("metrics_scrape.py", ["--events", "120", "--rounds", "1"], "outcomes counted: 30"),
        ("queue_throughput.py", ["--candidates", "3", "--check-seconds", "0.2"],
         "bot overhead per candidate"),
    ],
)  # fmt: skip
def test_benchmark_runs_and_reports(
    script: str, args: list[str], expected: str | tuple[str, ...], tmp_path: Path
) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "base" in done.stdout
    for text in expected if isinstance(expected, tuple) else (expected,):
        assert text in done.stdout
