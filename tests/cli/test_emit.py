"""`mergebot emit` in-process against a real running app (aiohttp test server, real Redis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mergebot.commands.emit import UsageError, build_event
from mergebot.main import create_app, main
from mergebot.runtime import Runtime
from mergebot.store.eventlog import EventLog
from tests.conftest import free_port
from tests.factories import SHA_A, SHA_B

MakeServer = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
async def server_url(aiohttp_server: MakeServer, runtime: Runtime, cli_env: dict[str, str]) -> str:
    server = await aiohttp_server(create_app(runtime))
    return str(server.make_url("/"))


async def emit(*argv: str) -> int:
    # The CLI is synchronous; run it off the loop that serves the app.
    return await asyncio.to_thread(main, ["emit", *argv])


async def payloads(eventlog: EventLog) -> list[dict[str, object]]:
    return [e.envelope.payload async for e in eventlog.replay()]


async def test_emit_stores_the_event_and_prints_the_servers_answer(
    server_url: str, eventlog: EventLog, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await emit(
        "review_approved", "repo=acme/widgets", "slug=pr-7", "review_round=2",
        "reviewer_session_id=alice", f"sha={SHA_A}", "id=appr-7", "--url", server_url,
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"stored": [{"id": "appr-7", "duplicate": False}]}
    [payload] = await payloads(eventlog)
    assert payload["review_round"] == 2
    assert payload["sha"] == SHA_A
    assert isinstance(payload["approved_at"], str)  # filled with the current time


async def test_emit_reads_the_server_url_from_the_environment(
    server_url: str, eventlog: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MERGEBOT_URL", server_url)
    code = await emit("resume_requested", "repo=acme/widgets", "slug=pr-7", "requested_by=carol")
    assert code == 0
    assert [p["requested_by"] for p in await payloads(eventlog)] == ["carol"]


async def test_emit_takes_json_values_with_colon_equals(
    server_url: str, eventlog: EventLog
) -> None:
    code = await emit(
        "integration_completed", "repo=acme/widgets", "slug=pr-7", "branch=feature/x",
        f"sha={SHA_A}", f"main_before={SHA_B}", f"main_after={'c' * 40}",
        'checks:=[{"name": "ci", "state": "success"}]', "--url", server_url,
    )  # fmt: skip
    assert code == 0
    [payload] = await payloads(eventlog)
    assert payload["checks"] == [{"name": "ci", "state": "success"}]


async def test_an_invalid_event_exits_1_with_the_servers_message_and_stores_nothing(
    server_url: str, eventlog: EventLog, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await emit(
        "finalize_ready", "repo=acme/widgets", "slug=pr-7", "sha=xyz", "--url", server_url
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "refused the event (422)" in err
    assert "  sha: " in err
    assert "  branch: Field required" in err
    assert await payloads(eventlog) == []


async def test_a_conflicting_id_exits_1_with_409_and_keeps_the_stored_event(
    server_url: str, eventlog: EventLog, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["resume_requested", "repo=acme/widgets", "slug=pr-7", "id=res-1"]
    assert await emit(*base, "requested_by=carol", "--url", server_url) == 0
    assert await emit(*base, "requested_by=mallory", "--url", server_url) == 1
    assert "(409)" in capsys.readouterr().err
    assert [p["requested_by"] for p in await payloads(eventlog)] == ["carol"]


async def test_a_wrong_token_exits_1_with_401(
    server_url: str,
    eventlog: EventLog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MERGEBOT_API_TOKEN", "not-the-token")
    code = await emit(
        "resume_requested", "repo=acme/widgets", "slug=pr-7", "requested_by=c", "--url", server_url
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "(401)" in err
    assert "not-the-token" not in err
    assert await payloads(eventlog) == []


def test_an_unreachable_server_exits_1_naming_it(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://user:secret@127.0.0.1:{free_port()}"
    code = main(["emit", "resume_requested", "repo=acme/widgets", "--url", url])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot reach the server at http://127.0.0.1:" in err
    assert "secret" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["oops"], "expected key=value"),
        (["checks:=[1,"], "not valid JSON"),
        (["review_round=two"], "must be an integer"),
        (["slug=a", "slug=b"], "given twice"),
        (["name=x"], "first argument"),
    ],
)
def test_bad_arguments_exit_2_before_anything_is_sent(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # The URL is a closed port: had anything been sent, the message would say so.
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["emit", "review_approved", *argv, "--url", url]) == 2
    assert message in capsys.readouterr().err


def test_without_a_token_emit_says_which_variable_to_set(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MERGEBOT_API_TOKEN")
    assert main(["emit", "resume_requested", "repo=acme/widgets"]) == 2
    assert "MERGEBOT_API_TOKEN" in capsys.readouterr().err


def test_build_event_parses_values_sensibly() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = build_event(
        "review_approved",
        ["repo=acme/w", "review_round=3", "note=12", 'meta:={"a": [1]}', "flag:=true"],
        now=now,
    )
    assert event == {
        "name": "review_approved",
        "repo": "acme/w",
        "review_round": 3,
        "note": "12",  # only the event's integer fields become ints
        "meta": {"a": [1]},
        "flag": True,
        "approved_at": now.isoformat(),
    }
    explicit = build_event("resume_requested", ["at=2026-01-01T00:00:00+00:00"], now=now)
    assert explicit["at"] == "2026-01-01T00:00:00+00:00"
    with pytest.raises(UsageError):
        build_event("review_approved", ["=x"])
