"""The notifier as a real process, killed with SIGKILL while a message is in flight: after a
restart the message is delivered, once in the chat, and the outbox is empty."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mergebot.events import envelope_for, parse_event
from mergebot.runtime import Runtime
from mergebot.store.notify import DeliveryState, NotifyStore
from tests.chatstandin import TELEGRAM_TOKEN, ChatStandIn
from tests.factories import raw_event
from tests.notifykit import REPO
from tests.waiting import until

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
async def standin() -> AsyncIterator[ChatStandIn]:
    server = await ChatStandIn().start()
    try:
        yield server
    finally:
        await server.stop()


def start(consumer: str, env: dict[str, str], *, stderr: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.notify_process", consumer],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


async def test_killed_mid_delivery_is_delivered_after_restart_exactly_once(
    runtime: Runtime,
    standin: ChatStandIn,
    redis_url: str,
    tmp_path: Path,
) -> None:
    config = tmp_path / "mergebot.toml"
    config.write_text(
        f'[repos."{REPO}"]\nremote = "/nonexistent"\n'
        f'[[repos."{REPO}".notify]]\nsink = "telegram"\ntoken_env = "TG_TOKEN"\n'
        f'chat_id = "-100"\napi_url = "{standin.url}"\n'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")},
        "MERGEBOT_REDIS_URL": redis_url,
        "MERGEBOT_KEY_PREFIX": runtime.keys.prefix,
        "MERGEBOT_CONFIG": str(config),
        "MERGEBOT_DATA_DIR": str(tmp_path / "data"),
        "TG_TOKEN": TELEGRAM_TOKEN,
        "PYTHONPATH": str(REPO_ROOT),
    }
    # The first answer never comes in time: the process is killed while waiting for it.
    standin.fail_next("telegram", 200, {"ok": True, "result": {"message_id": 1}}, delay=20)
    event = parse_event(raw_event("integration_blocked", slug="pr-9")).event
    await runtime.eventlog.append(envelope_for(event, source="integrator"))

    first = start("notifier-1", env, stderr=subprocess.DEVNULL)
    try:
        await until(lambda: len(standin.to("telegram")) == 1, timeout=30, what="first send")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert standin.posted == []

    second = start("notifier-1", env, stderr=subprocess.PIPE)
    try:
        await until(lambda: len(standin.posted) == 1, timeout=30, what="delivery after restart")
    finally:
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=20)
    assert second.returncode == 0, stderr.decode()[-2000:]
    assert b"notification_delivered" in stderr  # the log is there, the token is not
    assert TELEGRAM_TOKEN.encode() not in stderr

    assert len(standin.to("telegram")) == 2  # the interrupted send, then the one that landed
    assert [service for service, _ in standin.posted] == ["telegram"]
    store = NotifyStore(runtime.redis, runtime.keys)
    [(repo, key)] = await store.outboxes()
    assert await store.outbox_length(repo, key) == 0
    raw = await runtime.redis.hgetall(runtime.keys.notify_deliveries(REPO))
    [record] = raw.values()
    assert f'"{DeliveryState.DELIVERED.value}"' in record
