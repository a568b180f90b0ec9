"""`mergebot config check`: every problem with file, key and reason; the effective config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergebot.main import main

GOOD = """
[defaults]
required_approvals = 2
checks.timeout_seconds = 600

[repos."acme/widgets"]
remote = "https://example.invalid/acme/widgets.git"
forge = "github"
merge_method = "squash"

[[repos."acme/widgets".notify]]
sink = "log"
"""


def write(tmp_path: Path, text: str, name: str = "mergebot.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_prints_the_effective_config_and_exits_0(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr()
    assert "valid" in out.err
    effective = json.loads(out.out)
    repo = effective["repos"]["acme/widgets"]
    assert repo["required_approvals"] == 2  # from [defaults]
    assert repo["merge_method"] == "squash"  # from the repo table
    assert repo["base_branch"] == "main"  # built-in default
    assert repo["checks"]["timeout_seconds"] == 600
    assert repo["notify"][0]["events"] == ["completed", "blocked", "frozen", "unfrozen"]


def test_freeze_windows_and_clearance_are_checked_one_by_one(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
[repos."acme/widgets"]
remote = "/srv/git/widgets.git"
freeze.windows = ["Sat 00:00-Mon 06:00 UTC", "Fri 25:00-Sat 01:00 UTC", "weekends"]
clearance.commands = ["make smoke"]
clearance.timeout_seconds = 0
""",
    )
    assert main(["config", "check", str(path)]) == 1
    lines = [line.strip() for line in capsys.readouterr().err.splitlines()[1:]]
    prefix = f'{path}: repos."acme/widgets"'
    assert lines == [
        f"{prefix}.freeze.windows.1: Value error, 'Fri 25:00-Sat 01:00 UTC': 25:00 is not a "
        "time of day (00:00 to 23:59)",
        f"{prefix}.freeze.windows.2: Value error, 'weekends' is not a freeze window: write "
        "`<Day> HH:MM-<Day> HH:MM <zone>` (e.g. `Sat 00:00-Mon 06:00 UTC`) or `HH:MM-HH:MM "
        "<zone>` for every day",
        f"{prefix}.clearance.timeout_seconds: Input should be greater than 0",
    ]


def test_every_problem_is_listed_with_file_key_and_reason(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
[defaults]
required_aprovals = 2
grace_seconds = "soon"

[repos."acme/widgets"]
merge_method = "yolo"
checks = { commands = "make test" }

[repos."not-a-repo"]
forge = "git"
""",
    )
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert f"{path}: defaults.required_aprovals: unknown key" in lines
    assert any(line.startswith(f"{path}: defaults.grace_seconds: ") for line in lines)
    assert any(line.startswith(f'{path}: repos."acme/widgets".merge_method: ') for line in lines)
    assert any(line.startswith(f'{path}: repos."acme/widgets".checks.commands: ') for line in lines)
    assert any(line.startswith(f'{path}: repos."not-a-repo": ') for line in lines)
    assert err.splitlines()[0] == f"{path}: {len(lines)} problem(s):"


def test_bad_toml_syntax_names_the_line(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[defaults]\nbase_branch = = 'main'\n")
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: <syntax>:" in err
    assert "line 2" in err


def test_a_repo_file_may_not_set_server_only_keys(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'mode = "live"\nremote = "x"\nbase_branch = "trunk"\n'
    path = write(tmp_path, text, ".github/mergebot.toml")
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: mode: may only be set in the server's config file" in err
    assert f"{path}: remote: may only be set in the server's config file" in err


def test_a_valid_repo_file_prints_its_effective_values(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'base_branch = "trunk"\n[checks]\nrequired = ["ci"]\n'
    path = write(tmp_path, text, ".github/mergebot.toml")
    assert main(["config", "check", str(path)]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert effective["base_branch"] == "trunk"
    assert effective["checks"]["required"] == ["ci"]


def test_the_default_path_is_mergebot_config_then_mergebot_toml(
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "check"]) == 1  # cwd is tmp_path: no ./mergebot.toml yet
    assert "mergebot.toml: <file>: No such file or directory" in capsys.readouterr().err
    write(tmp_path, GOOD)
    assert main(["config", "check"]) == 0
    capsys.readouterr()
    other = write(tmp_path, "[defaults]\nbogus = 1\n", "elsewhere.toml")
    monkeypatch.setenv("MERGEBOT_CONFIG", str(other))
    assert main(["config", "check"]) == 1
    assert f"{other}: defaults.bogus: unknown key" in capsys.readouterr().err


def test_bad_environment_variables_are_problems_too_without_their_values(
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MERGEBOT_PORT", "eighty-eighty")
    path = write(tmp_path, GOOD)
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "environment: MERGEBOT_PORT: " in err
    assert "eighty-eighty" not in err


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"MERGEBOT_REDIS_CLUSTER": "true"},
            "environment: MERGEBOT_REDIS_CLUSTER: Value error, needs MERGEBOT_REDIS_URL (a node "
            "of the cluster): the embedded Redis is a single server",
        ),
        (
            {
                "MERGEBOT_REDIS_URL": "redis://:hunter2@10.0.0.1:7000/4",
                "MERGEBOT_REDIS_CLUSTER": "1",
            },
            "environment: MERGEBOT_REDIS_CLUSTER: Value error, MERGEBOT_REDIS_URL: a Redis Cluster "
            "has only database 0, not 4",
        ),
        (
            {"MERGEBOT_REDIS_URL": "redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:x"},
            "environment: MERGEBOT_REDIS_URL: Value error, '10.0.0.2:x' is not host:port (bad "
            "port)",
        ),
        (
            {"MERGEBOT_REDIS_CLUSTER": "sometimes"},
            "environment: MERGEBOT_REDIS_CLUSTER: Input should be a valid boolean, unable to "
            "interpret input",
        ),
    ],
)
def test_a_bad_redis_cluster_setting_is_a_problem_that_says_why(
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.delenv("MERGEBOT_REDIS_URL")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, GOOD)
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert [line.strip() for line in err.splitlines()[1:]] == [expected]
    assert "hunter2" not in err


def test_the_train_settings_are_checked_and_shown(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, GOOD + '\n[repos."acme/widgets".pipeline]\ndepth = 4\nadaptive = true\n')
    assert main(["config", "check", str(good)]) == 0
    pipeline = json.loads(capsys.readouterr().out)["repos"]["acme/widgets"]["pipeline"]
    assert pipeline == {"depth": 4, "max_depth": 8, "adaptive": True}

    for table, problem in [
        ("{ depth = 12 }", "pipeline: Value error, depth (12) is larger than max_depth (8)"),
        ("{ depth = 0 }", "pipeline.depth: Input should be greater than or equal to 1"),
        ("{ window = 2 }", "pipeline.window: unknown key"),
    ]:
        bad = write(tmp_path, f'[repos."acme/widgets"]\npipeline = {table}\n')
        assert main(["config", "check", str(bad)]) != 0
        assert f'repos."acme/widgets".{problem}' in capsys.readouterr().err


def test_the_batch_and_retry_settings_are_checked_and_shown(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = (
        '\n[repos."acme/widgets".batch]\nmax_size = 8\nwait_seconds = 30\n'
        '[repos."acme/widgets".checks]\nretry_failed = 1\n'
    )
    good = write(tmp_path, GOOD + extra)
    assert main(["config", "check", str(good)]) == 0
    shown = json.loads(capsys.readouterr().out)["repos"]["acme/widgets"]
    assert shown["batch"] == {"max_size": 8, "wait_seconds": 30}
    assert shown["checks"]["retry_failed"] == 1

    for table, problem in [
        ("batch = { max_size = 0 }", "batch.max_size: Input should be greater than or equal to 1"),
        ("batch = { wait_seconds = -1 }", "batch.wait_seconds: Input should be greater than"),
        ("batch = { size = 2 }", "batch.size: unknown key"),
        ("checks = { retry_failed = -1 }", "checks.retry_failed: Input should be greater than"),
    ]:
        bad = write(tmp_path, f'[repos."acme/widgets"]\n{table}\n')
        assert main(["config", "check", str(bad)]) != 0
        assert f'repos."acme/widgets".{problem}' in capsys.readouterr().err


def test_cutover_keys_are_checked_and_only_the_server_file_sets_them(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = 'merge_method = "squash"\n'
    good = GOOD.replace(
        table, table + 'mode = "live"\ncutover = { min_parity = 0.95, min_decisions = 20 }\n'
    )
    assert main(["config", "check", str(write(tmp_path, good))]) == 0
    repo = json.loads(capsys.readouterr().out)["repos"]["acme/widgets"]
    assert repo["cutover"] == {"min_parity": 0.95, "min_decisions": 20, "accepted": False}

    bad = GOOD.replace(
        table, table + "cutover = { min_parity = 1.5, min_decisions = -1, acepted = true }\n"
    )
    assert main(["config", "check", str(write(tmp_path, bad))]) == 1
    err = capsys.readouterr().err
    assert 'repos."acme/widgets".cutover.min_parity: Input should be less than or equal to 1' in err
    assert 'repos."acme/widgets".cutover.min_decisions: Input should be greater than or' in err
    assert 'repos."acme/widgets".cutover.acepted: unknown key' in err

    own = write(tmp_path, "cutover.accepted = true\n", ".github/mergebot.toml")
    assert main(["config", "check", str(own)]) == 1
    assert "cutover: may only be set in the server's config file" in capsys.readouterr().err
