"""`mergebot events`: the stored envelopes, newest last, straight from Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mergebot.config import Settings
from mergebot.events import envelope_for, parse_event
from mergebot.main import main
from mergebot.store.connection import connect
from mergebot.store.embedded import EmbeddedRedis
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from tests.conftest import free_port
from tests.factories import raw_event


async def seed(eventlog: EventLog) -> None:
    for i in range(5):
        repo = "acme/widgets" if i % 2 == 0 else "acme/gadgets"
        event = parse_event(raw_event("resume_requested", repo=repo, slug=f"pr-{i}")).event
        await eventlog.append(envelope_for(event, source="test", event_id=f"ev-{i}"))


async def events(*argv: str) -> int:
    return await asyncio.to_thread(main, ["events", *argv])


async def test_json_lists_envelopes_newest_last_up_to_the_limit(
    cli_env: dict[str, str], eventlog: EventLog, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(eventlog)
    assert await events("--json", "--limit", "3") == 0
    printed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in printed] == ["ev-2", "ev-3", "ev-4"]
    assert set(printed[0]) == {"id", "name", "type", "source", "received_at", "payload"}


async def test_repo_filter_and_readable_lines(
    cli_env: dict[str, str], eventlog: EventLog, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(eventlog)
    assert await events("--repo", "acme/gadgets") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "resume_requested" in lines[0]
    assert "acme/gadgets" in lines[0]
    assert "slug=pr-1" in lines[0]
    assert lines[1].endswith("id=ev-3 source=test")


async def test_an_empty_log_says_so(
    cli_env: dict[str, str], eventlog: EventLog, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await events() == 0
    out = capsys.readouterr()
    assert out.out == ""
    assert "no events stored" in out.err


@pytest.mark.parametrize("argv", [["--repo", "not a repo"], ["--limit", "0"]])
def test_bad_options_are_refused(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["events", *argv])
    assert exc.value.code == 2
    assert "mergebot events: error" in capsys.readouterr().err


def test_unreachable_redis_exits_1_with_a_message(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MERGEBOT_REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert main(["events"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the event log" in err
    assert "hunter2" not in err


async def test_with_embedded_redis_it_reads_the_running_servers_data_and_leaves_it_running(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MERGEBOT_REDIS_URL")
    settings = Settings()
    owner = EmbeddedRedis(settings.data_dir)
    url = owner.start()
    try:
        client = connect(url)
        try:
            keys = Keys(prefix=settings.key_prefix)
            await seed(EventLog(client, keys))
            assert await events("--json", "--limit", "1") == 0
            assert [e["id"] for e in json.loads(capsys.readouterr().out)] == ["ev-4"]
            assert await client.ping()  # the CLI did not stop the server it borrowed
        finally:
            await client.aclose()
    finally:
        owner.stop()
