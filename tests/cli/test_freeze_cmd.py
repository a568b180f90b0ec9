"""`mergebot freeze` / `unfreeze`: a person's freeze in the log, shown by `mergebot status`."""

from __future__ import annotations

import pytest

from mergebot.runtime import Runtime
from tests.brainkit import manage, process
from tests.cli.test_resume_cancel import cli
from tests.factories import REPO


async def test_freeze_then_unfreeze_through_the_log(
    cli_env: dict[str, str], runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    manage(runtime)
    code = await cli("freeze", REPO, "--reason", "release 2.4", "--until", "4h", "--by", "dana")
    assert code == 0
    out = capsys.readouterr().out
    assert "queue_frozen for acme/widgets (main) by dana until 20" in out
    assert "main does not move until `mergebot unfreeze acme/widgets`" in out
    [entry] = await runtime.eventlog.tail(limit=1)
    assert (entry.envelope.name, entry.envelope.source) == ("queue_frozen", "cli")
    assert entry.envelope.payload["reason"] == "release 2.4"
    await process(runtime)
    assert await cli("status", "--repo", REPO) == 0
    assert "frozen: release 2.4 (by dana, until 20" in capsys.readouterr().out
    assert await cli("unfreeze", REPO, "--by", "dana") == 0
    assert "queue_unfrozen for acme/widgets (main) by dana: stored" in capsys.readouterr().out
    await process(runtime)
    assert await cli("status", "--repo", REPO) == 0
    assert "frozen" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--reason", "x", "--until", "soon"], "is not a time"),
        (["--reason", "x", "--until", "2001-01-01T00:00+00:00"], "is in the past"),
        (["--reason", "   "], "reason"),
    ],
)
async def test_bad_freezes_are_refused_and_nothing_is_stored(
    cli_env: dict[str, str],
    runtime: Runtime,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    manage(runtime)
    assert await cli("freeze", REPO, *argv) == 2
    assert says in capsys.readouterr().err
    assert await runtime.eventlog.tail(limit=1) == []
