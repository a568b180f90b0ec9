"""Shared by the integrator stories: a Story is a managed repo on a real bare remote, the web
app for POST /events, the processor folded on demand, and the integrator's READY hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.integrator import IntegratorHook
from mergebot.main import create_app
from mergebot.runtime import Runtime
from tests.conftest import API_TOKEN
from tests.gitutil import GitRemote
from tests.integrationkit import Cand, candidate_events, enable_ref_log, manage_remote, process

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def story(
    runtime: Runtime,
    remote: GitRemote,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> AsyncIterator[Story]:
    enable_ref_log(remote)
    hook = IntegratorHook(runtime)
    runtime.ready_hook = hook
    client = await aiohttp_client(create_app(runtime))
    try:
        yield Story(runtime, remote, hook, client)
    finally:
        await hook.close()
        runtime.close_mirrors()


class Story:
    def __init__(
        self, runtime: Runtime, remote: GitRemote, hook: IntegratorHook, client: Client
    ) -> None:
        self.runtime = runtime
        self.remote = remote
        self.hook = hook
        self.client = client

    def manage(self, **table: Any) -> None:
        manage_remote(self.runtime, self.remote, **table)

    async def post(self, *cands: Cand, approve: bool = True, since: datetime | None = None) -> None:
        body = [
            e
            for n, c in enumerate(cands)
            for e in candidate_events(c, n, approve=approve, since=since)
        ]
        response = await self.client.post("/events", json=body, headers=AUTH)
        assert response.status == 201, await response.text()

    async def run(self, *cands: Cand) -> None:
        """POST the candidates' events, fold them (the READY hook starts the integrator) and
        wait for the integrator to finish."""
        await self.post(*cands)
        await process(self.runtime)
        await asyncio.wait_for(self.hook.idle(), timeout=60)

    def worktrees(self) -> list[Path]:
        root = self.runtime.settings.data_dir / "worktrees"
        return [p for d in root.iterdir() for p in d.iterdir()] if root.exists() else []
