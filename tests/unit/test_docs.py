"""The README's reference tables and the Dockerfile stay true to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mergebot.config import RepoConfig, Settings
from mergebot.main import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def table_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the first Markdown table under `heading`, keyed by their first cell."""
    section = README.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def toml_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def test_every_environment_variable_is_documented() -> None:
    rows = table_rows("### Environment variables")
    documented = {name for key in rows for name in re.findall(r"MERGEBOT_[A-Z_]+", key)}
    expected = {f"MERGEBOT_{field.upper()}" for field in Settings.model_fields}
    assert expected == documented


def test_every_per_repo_key_is_documented_with_its_default() -> None:
    rows = table_rows("### Per-repo keys")
    expected: dict[str, Any] = {}
    for key, value in RepoConfig().model_dump(mode="json").items():
        if isinstance(value, dict):  # a sub-table (checks, cutover…): one row per key
            expected |= {f"{key}.{sub}": v for sub, v in value.items()}
        else:
            expected[key] = value
    assert set(rows) == set(expected)
    for key, value in expected.items():
        assert rows[key][0].strip("`") == toml_text(value), key


def test_the_readme_names_every_cli_command() -> None:
    section = README.split("## Command line", 1)[1]
    for name in COMMANDS:
        assert f"`{name}" in section, name


def test_the_dockerfile_runs_serve_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "apt-get install -y --no-install-recommends git bubblewrap" in text
    assert re.search(r"^USER mergebot$", text, re.M)
    assert "MERGEBOT_HOST=0.0.0.0" in text
    assert "MERGEBOT_DATA_DIR=/data" in text
    assert re.search(r'^CMD \["mergebot", "serve"\]$', text, re.M)
    assert "/healthz" in " ".join(healthcheck_command())


def healthcheck_command() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK (also run by the serve e2e test)."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M)
    assert match, "no exec-form HEALTHCHECK in the Dockerfile"
    command: list[str] = json.loads(match.group(1))
    return command
