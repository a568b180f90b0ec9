"""The commands that read the store fail the same way: one line on stderr, exit 1, no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergebot.main import main
from tests.conftest import free_port

STORE_COMMANDS = [
    (["status", "--repo", "acme/widgets"], "cannot read the queue"),
    (["events"], "cannot read the event log"),
    (["replay"], "cannot replay"),
    (["compact"], "cannot compact"),
    (["followups"], "cannot read the follow-ups"),
    (["dead-letters"], "cannot read the dead letters"),
]


@pytest.mark.parametrize(("argv", "says"), STORE_COMMANDS, ids=[a[0] for a, _ in STORE_COMMANDS])
def test_an_unreachable_redis_is_one_line_and_exit_1(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    monkeypatch.setenv("MERGEBOT_REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mergebot: {says}: ConnectionError")
    assert len(err.strip().splitlines()) == 1
    assert "hunter2" not in err


@pytest.mark.parametrize(("argv", "says"), STORE_COMMANDS, ids=[a[0] for a, _ in STORE_COMMANDS])
def test_a_broken_server_file_is_reported_not_raised(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    says: str,
) -> None:
    config = tmp_path / "mergebot.toml"
    config.write_text('[repos."acme/widgets"]\nmerge_method = 3\n')
    monkeypatch.setenv("MERGEBOT_CONFIG", str(config))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mergebot: configuration is invalid:")
    assert "merge_method" in err


@pytest.mark.parametrize("command", ["status", "events", "replay", "followups", "dead-letters"])
def test_a_bad_repo_name_is_a_usage_error(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--repo", "not a repo"])
    assert exc.value.code == 2
    assert "is not a repo name of the form owner/name" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["0", "-2", "two", ""])
def test_replay_refuses_a_number_of_processes_that_is_not_one_or_more(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", f"--jobs={jobs}"])
    assert exc.value.code == 2
    assert f"{jobs!r} is not a number of processes (1 or more)" in capsys.readouterr().err
