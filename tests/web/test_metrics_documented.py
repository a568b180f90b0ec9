"""What `GET /metrics` really exports is what `docs/metrics.md` lists: a metric added in code
(a counter a route module registers on the app, say) without its row fails here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mergebot.main import create_app
from mergebot.runtime import Runtime
from tests.unit.test_telemetry import documented

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

# The text format names a counter's family without the suffix its samples carry.
_COUNTER_SUFFIX = "_total"
# The creation time prometheus_client exports for each labelled counter, read as its own family.
_CREATED_SUFFIX = "_created"


async def test_every_exported_metric_is_documented_with_its_type(
    aiohttp_client: MakeClient, runtime: Runtime
) -> None:
    client = await aiohttp_client(create_app(runtime))
    response = await client.get("/metrics")
    assert response.status == 200
    exported: dict[str, str] = {}
    for family in text_string_to_metric_families(await response.text()):
        if family.name.endswith(_CREATED_SUFFIX):  # prometheus_client's series beside a counter
            continue
        name = family.name + (_COUNTER_SUFFIX if family.type == "counter" else "")
        exported[name] = family.type
    docs = documented()
    assert {name: kind for name, (kind, _labels) in docs.items()} == exported
