"""Property: whatever arrives at POST /events or POST /webhook — any body, any headers — the
answer is never a 5xx while Redis is up, a refusal stores nothing, and every stored event reads
back as a valid event.

Bodies are drawn from real events and real GitHub payloads with fields replaced by arbitrary JSON
(lone surrogates, deep nesting, huge numbers included), from arbitrary JSON and from arbitrary
bytes; headers from correct, wrong and non-ASCII credentials. A few hundred examples per endpoint
by default; `MERGEBOT_PROPERTY_EXAMPLES=5000` for a longer hunt.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mergebot.config import parse_server_config
from mergebot.github.signature import sign
from mergebot.main import create_app
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.eventlog import EventLog, LogEntry
from mergebot.store.keys import Keys
from tests import ghsupport as gh
from tests.conftest import API_TOKEN, settings_for
from tests.factories import raw_event

EXAMPLES = int(os.environ.get("MERGEBOT_PROPERTY_EXAMPLES", "300"))
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
T = TypeVar("T")

EVENT_NAMES = [
    "review_approved", "review_dismissed", "finalize_ready", "branch_pushed",
    "candidate_withdrawn", "resume_requested", "priority_set", "integration_blocked",
]  # fmt: skip
GITHUB_EVENTS = {
    "pull_request": ["pull_request.opened", "pull_request.synchronize", "pull_request.closed"],
    "pull_request_review": ["pull_request_review.submitted", "pull_request_review.dismissed"],
    "push": ["push.branch_created", "push.tag_deleted"],
    "issue_comment": ["issue_comment.created"],
    "check_run": ["check_run.completed"],
    "status": ["status"],
    "ping": ["ping"],
}

# -- strategies ------------------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False) | any_text
    | st.sampled_from(["", " ", "\x00", "a\nb", "feature/one", "pr-1", "acme/widgets",
                       "9999-12-31T23:59:59-23:59", "2026-01-01T00:00:00Z", "a" * 40])
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=12,
)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    depth = draw(st.integers(min_value=20, max_value=1200))
    value: Any = draw(scalars)
    for _ in range(depth):
        value = [value]
    return value


field_values = json_values | nested()


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with a few fields replaced, dropped or added (at the top, or one level down)."""
    out = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = out
        inner = [k for k, v in out.items() if isinstance(v, dict)]
        if inner and draw(st.booleans()):
            target = out[draw(st.sampled_from(inner))]
        keys = [*sorted(target), "id", "extra"]
        key = draw(st.sampled_from(keys) | any_text)
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(field_values)
    return out


event_objects = st.sampled_from(EVENT_NAMES).flatmap(
    lambda name: mutated({"name": name, **raw_event(name)})
)
event_bodies = (
    event_objects | st.lists(event_objects, min_size=0, max_size=3) | json_values | nested()
)


def encode(value: Any) -> bytes:
    # ensure_ascii escapes lone surrogates as \ud800, exactly what a hostile client sends.
    return json.dumps(value).encode()


raw_bodies = (
    event_bodies.map(encode)
    | st.binary(max_size=200)
    | st.sampled_from([b"", b"NaN", b"[1e999]", b'{"name": Infinity}', b"[" * 100_000,
                       b'{"repo": "acme/widgets", "x": -Infinity}', b"1" * 5000])
)  # fmt: skip
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
)


def mostly(right: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`right` four times in five: authenticated requests are where the parsing happens."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: wrong if n == 0 else right)


authorizations = mostly(
    st.sampled_from([f"Bearer {API_TOKEN}", f"bearer   {API_TOKEN}  "]),
    header_text.map(lambda t: f"Bearer {t}") | header_text | st.none(),
)


@st.composite
def events_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain"]))}
    authorization = draw(authorizations)
    if authorization is not None:
        headers["Authorization"] = authorization
    return draw(raw_bodies), headers


@st.composite
def webhook_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    event = draw(st.sampled_from(sorted(GITHUB_EVENTS)))
    payload = draw(mutated(gh.load(draw(st.sampled_from(GITHUB_EVENTS[event])))))
    body = draw(mostly(st.just(encode(payload)), raw_bodies))
    headers = {
        "X-GitHub-Event": draw(mostly(st.just(event), header_text)),
        "X-GitHub-Delivery": draw(mostly(st.uuids().map(str), header_text)),
        "Content-Type": "application/json",
    }
    signature = draw(
        mostly(
            st.just(sign(gh.SECRET.encode(), body)),
            header_text | st.just("sha256=" + "0" * 64) | st.none(),
        )
    )
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return body, headers


# -- the property ----------------------------------------------------------------------------------


@pytest.fixture
async def client(
    aiohttp_client: MakeClient, redis: RedisClient, keys: Keys, tmp_path: Path
) -> Client:
    config = parse_server_config(gh.SERVER_TOML, "mergebot.toml")
    runtime: Runtime = build_runtime(
        settings_for(tmp_path, webhook_secret=gh.SECRET), config, redis, keys
    )
    return await aiohttp_client(create_app(runtime))


async def _stored_count(eventlog: EventLog, redis: RedisClient, keys: Keys) -> int:
    return await eventlog.length() + int(await redis.xlen(keys.commands()))


@pytest.mark.parametrize(
    ("path", "requests"),
    [("/events", events_requests()), ("/webhook", webhook_requests())],
    ids=["events", "webhook"],
)
async def test_no_input_gets_a_server_error_and_a_refusal_stores_nothing(
    client: Client,
    eventlog: EventLog,
    redis: RedisClient,
    keys: Keys,
    path: str,
    requests: st.SearchStrategy[tuple[bytes, dict[str, str]]],
) -> None:
    loop = asyncio.get_running_loop()
    statuses: dict[int, int] = {}

    def call(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    async def send(body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(path, data=body, headers=headers)
        await response.read()
        return response.status

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests)
    def check(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        before = call(_stored_count(eventlog, redis, keys))
        status = call(send(body, headers))
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (status, body[:300], headers)
        if not 200 <= status < 300:
            assert call(_stored_count(eventlog, redis, keys)) == before, (status, body[:300])

    await asyncio.to_thread(check)

    entries = [entry async for entry in eventlog.replay()]
    assert await eventlog.poison_count() == 0
    for entry in entries:
        assert isinstance(entry, LogEntry)
        entry.envelope.event()  # every stored event reads back as a valid event
    assert any(200 <= s < 300 for s in statuses), statuses  # the property saw acceptances too
