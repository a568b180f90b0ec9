"""`mergebot demo`: the walkthrough a new user runs first must really land one branch on main and
block the conflicting one, then clean up after itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mergebot.commands import demo_story as demo
from mergebot.main import main
from tests.gitutil import git

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_demo_lands_the_first_branch_and_blocks_the_conflicting_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller's own settings must not leak into the demo (it brings its own Redis and config).
    monkeypatch.setenv("MERGEBOT_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("MERGEBOT_REDIS_CLUSTER", "true")
    monkeypatch.setenv("MERGEBOT_CONFIG", str(tmp_path / "missing.toml"))
    root = tmp_path / "demo"
    assert main(["demo", "--dir", str(root), "--timeout", "60"]) == 0
    out = capsys.readouterr().out

    bare = root / "widgets.git"
    first = git(bare, "rev-parse", "feature/greet-by-name")
    second = git(bare, "rev-parse", "feature/shout")
    merge = git(bare, "rev-list", "--parents", "-n1", "main").split()
    assert len(merge) == 3, "main's tip is a merge commit"
    assert merge[2] == first
    ancestors = git(bare, "rev-list", "main").split()
    assert second not in ancestors, "the conflicting branch never reached main"
    assert "greet-by-name  in_progress -> integrated" in out
    assert "shout          in_progress -> blocked" in out
    assert "### Conflicting files (1)" in out
    assert "- `greeting.txt`" in out
    assert "http://127.0.0.1:" in out
    assert "/repos/demo/widgets" in out
    assert f"Merge greet-by-name ({first[:7]}) into main" in out
    assert "shout is blocked on a conflict in greeting.txt" in out
    assert f"Kept {root.resolve()}" in out


def test_demo_removes_its_temporary_directory_and_leaves_no_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TMPDIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "mergebot", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Removed " in result.stdout
    assert list(tmp_path.iterdir()) == [], "the demo directory is gone"
    assert "Traceback" not in result.stderr
    assert "WARNING" not in result.stderr


def test_an_unexpected_ending_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing check blocks both candidates: main does not move and the demo says it failed."""
    monkeypatch.setattr(demo, "CHECK_COMMAND", "test -f MISSING")
    root = tmp_path / "demo"
    assert main(["demo", "--dir", str(root), "--timeout", "60"]) == 1
    captured = capsys.readouterr()
    assert "did not end as expected" in captured.err
    assert "greet-by-name  in_progress -> blocked" in captured.out
    bare = root / "widgets.git"
    assert len(git(bare, "rev-list", "main").split()) == 1


def test_a_non_empty_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "precious.txt").write_text("mine\n")
    assert main(["demo", "--dir", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]


def test_demo_serve_keeps_the_dashboard_up_until_ctrl_c(tmp_path: Path) -> None:
    """The story prints a dashboard link: with --serve it still answers after the story, and
    Ctrl-C ends the demo cleanly (exit 0, directory removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergebot", "demo", "--serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        url = None
        for line in proc.stdout:  # ends when the process closes stdout: never hangs forever
            seen.append(line)
            match = re.search(r"Serving the dashboard at (\S+) until Ctrl-C", line)
            if match:
                url = match.group(1)
                break
        assert url, "".join(seen)[-3000:]
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert "demo/widgets" in resp.read().decode()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert "Removed " in out
    assert list(tmp_path.iterdir()) == [], "the demo directory is gone"
    assert "Traceback" not in err
