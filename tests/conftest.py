"""Shared fixtures: a real Redis per session (embedded, or MERGEBOT_TEST_REDIS_URL), an isolated
key prefix per test, real git repositories, and a guard that fails tests logging unexpected errors.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from mergebot.config import ServerConfig, Settings
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import RedisClient, connect
from mergebot.store.embedded import EmbeddedRedis
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from tests.gitutil import GitRemote

pytest_plugins = ("tests.fakegithub.fixtures",)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis every test talks to: MERGEBOT_TEST_REDIS_URL, or an embedded server we start."""
    external = os.environ.get("MERGEBOT_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def keys() -> Keys:
    """A key prefix of this test alone, so tests share one server, embedded or real."""
    return Keys(prefix=f"mbtest:{uuid.uuid4().hex[:12]}:v1")


@pytest.fixture
async def redis(redis_url: str, keys: Keys) -> AsyncIterator[RedisClient]:
    client = connect(redis_url)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=f"{keys.prefix}:*", count=500):
            await client.delete(key)
        await client.aclose()


@pytest.fixture
def eventlog(redis: RedisClient, keys: Keys) -> EventLog:
    return EventLog(redis, keys)


API_TOKEN = "test-api-token-0123456789"


class IsolatedSettings(Settings):
    """Settings from explicit values only: the MERGEBOT_* variables of whoever runs the tests
    must not change what a test sees."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    """In-process tests run check commands as the test's own user, unsandboxed: their commands
    wait on files in pytest's private tmp dir. How checks are isolated is tested end to end on
    real server processes (tests/e2e/test_check_isolation.py), with the defaults."""
    values: dict[str, object] = {
        "api_token": API_TOKEN,
        "data_dir": tmp_path / "data",
        "check_user": str(os.geteuid()),
        "check_sandbox": "none",
    }
    values.update(overrides)
    return IsolatedSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def runtime(redis: RedisClient, keys: Keys, tmp_path: Path) -> Runtime:
    """A Runtime around this test's Redis and key prefix, with API_TOKEN as the API token."""
    return build_runtime(settings_for(tmp_path), ServerConfig({}, {}), redis, keys)


def free_port() -> int:
    """A TCP port nobody listens on right now (for servers a test starts, or a closed port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, keys: Keys, tmp_path: Path
) -> dict[str, str]:
    """The environment a CLI command of this test sees: this test's Redis and key prefix, a data
    dir of its own, the test API token, and none of the caller's other MERGEBOT_* variables."""
    for name in list(os.environ):
        if name.startswith("MERGEBOT_") and name != "MERGEBOT_TEST_REDIS_URL":
            monkeypatch.delenv(name)
    env = {
        "MERGEBOT_REDIS_URL": redis_url,
        "MERGEBOT_KEY_PREFIX": keys.prefix,
        "MERGEBOT_DATA_DIR": str(tmp_path / "cli-data"),
        "MERGEBOT_API_TOKEN": API_TOKEN,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # so no ./mergebot.toml of the caller is picked up
    return env


@pytest.fixture
def remote(tmp_path: Path) -> GitRemote:
    return GitRemote(tmp_path / "git")


@pytest.fixture(autouse=True)
def _no_unexpected_error_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """A test that logs an ERROR it did not ask for fails: errors are never background noise."""
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail("unexpected ERROR log: " + "; ".join(r.getMessage() for r in errors[:3]))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may enter: pytest's own tmp dir is 0700, so a check command run as
    another user (or a server run as one) could not reach anything in it."""
    path = Path(tempfile.mkdtemp(prefix="mergebot-open-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
