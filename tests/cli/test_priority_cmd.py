"""`mergebot priority <repo> <slug> <n>`: a `priority_set` in the log, and the queue reordered."""

from __future__ import annotations

import pytest

from mergebot.runtime import Runtime
from tests.brainkit import emit, manage, process, queue_items
from tests.cli.test_resume_cancel import cli
from tests.factories import REPO
from tests.unit.test_readiness import approve, finalize, push


def ready(slug: str, sha: str, minute: int) -> list[dict[str, object]]:
    branch = f"feature/{slug}"
    return [
        approve(slug=slug, sha=sha, minute=minute),
        finalize(sha=sha, minute=minute, branch=branch, slug=slug),
        push(sha=sha, minute=minute, branch=branch),
    ]


async def test_priority_moves_a_younger_candidate_to_the_front(
    cli_env: dict[str, str], runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    manage(runtime)
    await emit(runtime, *ready("pr-1", "1" * 40, 1), *ready("pr-2", "2" * 40, 2))
    await process(runtime)
    assert [i.slug for i in await queue_items(runtime)] == ["pr-1", "pr-2"]
    assert await cli("priority", REPO, "pr-2", "3", "--by", "alice") == 0
    out = capsys.readouterr().out
    assert "priority_set 3 for acme/widgets pr-2 by alice: stored" in out
    assert "pr-2 is queued #2" in out
    [entry] = await runtime.eventlog.tail(limit=1)
    assert (entry.envelope.name, entry.envelope.source) == ("priority_set", "cli")
    assert entry.envelope.payload["priority"] == 3
    await process(runtime)
    assert [(i.slug, i.priority) for i in await queue_items(runtime)] == [("pr-2", 3), ("pr-1", 0)]


@pytest.mark.parametrize(
    "value",
    ["high", "5000", "-1001", "2.5"],
)
async def test_a_bad_priority_is_refused_and_nothing_is_stored(
    cli_env: dict[str, str],
    runtime: Runtime,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    with pytest.raises(SystemExit) as exited:
        await cli("priority", REPO, "pr-1", value)
    assert exited.value.code == 2
    assert "is not a priority: a whole number from -1000 to 1000" in capsys.readouterr().err
    assert await runtime.eventlog.tail(limit=1) == []
