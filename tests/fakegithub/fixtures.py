"""pytest fixtures for the fake GitHub (loaded from tests/conftest.py as a plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakegithub.schemas import validate
from tests.fakegithub.server import FakeGitHub

FAKE_TOKEN = "ghp_fakeTokenForTests0000000000000000000"  # a test value, not a secret
WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture
async def fake_github(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    """A fake GitHub with its webhooks going nowhere until a test sets `sender.url`.

    At the end of the test, every body it served is validated against GitHub's schema for that
    operation, so the fake cannot drift from the real API unnoticed."""
    fake = FakeGitHub(tmp_path / "github", token=FAKE_TOKEN, webhook_secret=WEBHOOK_SECRET)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    for served in fake.served:
        validate(served.op_id, served.status, served.body)
