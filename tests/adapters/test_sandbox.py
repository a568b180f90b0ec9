"""How check commands are started: secrets from `_FILE`s, the check user, bubblewrap when asked
for, and a clear failure (never a silent downgrade) when the check user cannot reach its
worktree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mergebot.checks import run_command
from mergebot.config import ConfigError, load_settings
from mergebot.sandbox import Sandbox, SandboxError, resolve_user, sandbox_for
from tests.conftest import settings_for

IS_ROOT = os.geteuid() == 0


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MERGEBOT_"):
            monkeypatch.delenv(name)


def test_a_secret_can_be_given_as_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_env(monkeypatch)
    (tmp_path / "token").write_text("from-a-file\n")
    monkeypatch.setenv("MERGEBOT_API_TOKEN_FILE", str(tmp_path / "token"))
    settings = load_settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-a-file"
    assert "from-a-file" in settings.secret_values()


def test_a_secret_given_twice_or_an_unreadable_file_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    (tmp_path / "secret").write_text("s3cret-value")
    monkeypatch.setenv("MERGEBOT_WEBHOOK_SECRET", "in-the-environment")
    monkeypatch.setenv("MERGEBOT_WEBHOOK_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("MERGEBOT_GIT_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert "MERGEBOT_WEBHOOK_SECRET_FILE: MERGEBOT_WEBHOOK_SECRET is set too" in text
    assert "MERGEBOT_GIT_PASSWORD_FILE" in text
    assert "No such file" in text
    assert "in-the-environment" not in text
    assert "s3cret-value" not in text


def test_bubblewrap_required_but_missing_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    settings = settings_for(tmp_path, check_sandbox="bwrap")
    with pytest.raises(SandboxError, match="bubblewrap is not installed"):
        sandbox_for(settings)


def test_an_unknown_check_user_is_named() -> None:
    with pytest.raises(SandboxError, match="MERGEBOT_CHECK_USER='no-such-user-here': no such"):
        resolve_user("no-such-user-here")


@pytest.mark.skipif(not IS_ROOT, reason="switching users needs root")
async def test_a_check_user_who_cannot_reach_the_worktree_fails_the_check_saying_why(
    open_dir: Path,
) -> None:
    closed = open_dir / "closed"
    worktree = closed / "worktree"
    worktree.mkdir(parents=True)
    closed.chmod(0o700)
    sandbox = Sandbox(run_as=resolve_user("nobody"))
    result = await run_command("true", worktree, time_limit=10, env={}, sandbox=sandbox)
    assert result.exit_code == 126
    assert f"who cannot enter {closed}" in result.output_tail


@pytest.mark.skipif(not IS_ROOT, reason="switching users needs root")
async def test_a_check_runs_as_the_check_user_in_a_worktree_handed_to_it(open_dir: Path) -> None:
    worktree = open_dir / "worktree"
    worktree.mkdir(parents=True)
    (worktree / "file.txt").write_text("x")
    nobody = resolve_user("nobody")
    result = await run_command(
        "id -u; echo built > out.txt; echo $HOME",
        worktree, time_limit=30, env={"PATH": "/usr/bin:/bin"}, sandbox=Sandbox(run_as=nobody),
    )  # fmt: skip
    assert result.exit_code == 0, result.output_tail
    uid, home = result.output_tail.splitlines()
    assert int(uid) == nobody.uid
    assert (worktree / "out.txt").read_text() == "built\n"
    assert (worktree / "file.txt").stat().st_uid == nobody.uid
    assert not Path(home).exists()  # its private home is removed afterwards
