"""Delivery: from the event log and the queue change streams to every sink, at least once.

Two stages, each acknowledging only after its effect is stored:

1. intake — consumer group "notify" on every event-log partition and on every managed repo's
   change stream. An entry becomes at most one notification (`notification.py`); it is fanned out
   to the outbox of each sink of the repo that wants that kind, and the per-(notification, sink)
   record is created in the same Lua script (so a re-read entry queues nothing twice). Then the
   entry is acknowledged. (Follow-ups are not a chat sink: their own consumer,
   `mergebot.followups_service`, opens and resolves them.)
2. delivery — one task per (repo, sink) outbox with its own consumer group: render, post or edit
   (`conversation.py` decides), retry with exponential backoff and jitter (honouring Retry-After),
   record the outcome and the conversation, then acknowledge. After `max_attempts`, or at once on
   a permanent error, the job becomes a dead letter (kept, counted, retryable).

A sink that is slow or down only holds up its own outbox: the integrator never waits on
notifications, and other sinks have their own tasks. Sinks come from the server's config file only:
a repo's own `.github/mergebot.toml` must not be able to send a server secret somewhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from mergebot.config import NotifySink
from mergebot.events import Envelope
from mergebot.notify.conversation import Action, after, plan
from mergebot.notify.http import DeliveryError, HttpClient, MessageGoneError
from mergebot.notify.notification import Notification, change_notification, from_envelope
from mergebot.notify.sinks import Message, Sink, build_sink, sink_key
from mergebot.notify.view import (
    CHAT,
    JSON_FORMATS,
    TIGHT,
    Format,
    Links,
    fits,
    links_for,
    notification_context,
    template_name,
)
from mergebot.queue import Change
from mergebot.render import TemplateError, renderer
from mergebot.runtime import Runtime
from mergebot.services import keep_running, sleep_until_stopped
from mergebot.store.changes import ChangeReader
from mergebot.store.notify import (
    DONE,
    Delivery,
    DeliveryState,
    NotifyStore,
    OutboxJob,
    dead_letter_id,
)

log = logging.getLogger("mergebot.notify")

GROUP = "notify"
_SINK_ADAPTER: TypeAdapter[NotifySink] = TypeAdapter(NotifySink)
_TaskFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard delivery tries. Tests shrink the times; production keeps the defaults."""

    max_attempts: int = 6
    backoff_base: float = 2.0  # seconds before the 2nd attempt; doubles after each failure
    backoff_max: float = 300.0
    max_retry_after: float = 900.0  # a Retry-After longer than this is capped
    timeout: float = 10.0  # per HTTP request
    block_ms: int = 1000  # how long a reader waits for new entries
    reclaim_idle_ms: int = 60_000  # entries another consumer holds this long are taken over
    discover_seconds: float = 5.0  # how often new repos and outboxes are looked for
    # On stop, how long in-flight steps may take to finish before they are cancelled. A send
    # cancelled while its request is out may already show in the chat, and it is sent again
    # after a restart; so a stop lets it end (a request lasts at most `timeout`).
    stop_grace_seconds: float = 15.0


def backoff(attempt: int, policy: DeliveryPolicy, retry_after: float | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's Retry-After when it gave one,
    else exponential with "equal jitter" (half fixed, half random), so a burst of failures does
    not retry in lockstep."""
    if retry_after is not None:
        return min(retry_after, policy.max_retry_after)
    ceiling = min(policy.backoff_max, policy.backoff_base * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def default_consumer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _when(value: object) -> str:
    return datetime.now(UTC).isoformat() if value is None else str(value)


class Notifier:
    """The notification pipeline of one process (intake, outbox workers, follow-ups)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        policy: DeliveryPolicy | None = None,
        consumer: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.policy: DeliveryPolicy = policy or DeliveryPolicy()
        self.consumer: str = consumer or default_consumer()
        self.environ = os.environ if environ is None else environ
        self.store = NotifyStore(runtime.redis, runtime.keys)
        self.change_reader = ChangeReader(runtime.redis, runtime.keys, GROUP, self.consumer)
        self.renderer = renderer(runtime.server_config.templates_dir)
        self._session: aiohttp.ClientSession | None = None
        self._wake: dict[tuple[str, str], asyncio.Event] = {}

    # -- configuration ---------------------------------------------------------------------------
    def sinks_for(self, repo: str) -> list[NotifySink]:
        config = self.runtime.server_config
        if not config.managed(repo):
            return []
        return list(config.repo(repo).notify)

    def links_for(self, repo: str) -> Links:
        return links_for(self.runtime.settings, self.runtime.server_config, repo)

    # -- intake ----------------------------------------------------------------------------------
    async def fan_out(self, n: Notification) -> int:
        """Queue `n` for every sink of its repo that receives its kind; how many were new."""
        jobs: list[tuple[str, dict[str, Any]]] = []
        for config in self.sinks_for(n.repo):
            if n.kind not in config.events:
                continue
            jobs.append(
                (
                    sink_key(config),
                    {
                        "notification": n.model_dump(mode="json"),
                        "sink": config.model_dump(mode="json"),
                    },
                )
            )
        queued = await self.store.fan_out(n.repo, n.id, jobs)
        for key, _job in jobs:
            wake = self._wake.get((n.repo, key))
            if wake is not None:
                wake.set()
        if queued:
            log.info(
                "notification_queued repo=%s slug=%s kind=%s id=%s sinks=%d",
                n.repo,
                n.slug,
                n.kind,
                n.id,
                queued,
            )
        return queued

    async def handle_event(self, envelope: Envelope) -> None:
        notification = from_envelope(envelope)
        if notification is not None:
            await self.fan_out(notification)

    async def handle_change(self, change: Change) -> None:
        notification = change_notification(change)
        if notification is not None:
            await self.fan_out(notification)

    async def intake_events(self, partition: int, *, block_ms: int | None = None) -> int:
        """One pass over a partition: this consumer's pending entries, a dead consumer's, new."""
        return await self.runtime.eventlog.consume(
            GROUP,
            self.consumer,
            partition,
            self.handle_event,
            reclaim_idle_ms=self.policy.reclaim_idle_ms,
            block_ms=block_ms,
        )

    async def intake_changes(self, repo: str, *, block_ms: int | None = None) -> int:
        """One pass over `repo`'s change stream: this consumer's pending changes, a dead
        consumer's, new ones; how many entries it took (unreadable ones are recorded and skipped
        by the reader)."""
        reader = self.change_reader
        await reader.ensure([repo])
        batch = await reader.pending(repo)
        if not batch.taken:
            batch = await reader.reclaim([repo], min_idle_ms=self.policy.reclaim_idle_ms, count=100)
        if not batch.taken:
            batch = await reader.read([repo], count=100, block_ms=block_ms)
        for _repo, change in batch.changes:
            await self.handle_change(change)
            await reader.ack(repo, change)
        return batch.taken

    # -- delivery --------------------------------------------------------------------------------
    def _http(self) -> HttpClient:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return HttpClient(self._session, timeout=self.policy.timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def render(
        self, fmt: Format, n: Notification, previous: Any, *, links: Links | None = None
    ) -> tuple[Any, str]:
        """The message body in `fmt` and its plain-text version."""
        links = links or self.links_for(n.repo)
        context = notification_context(n, previous, links)
        text = self.renderer.render(template_name(Format.PLAIN, n.kind), context)
        if fmt is Format.PLAIN:
            return text, text
        name = template_name(fmt, n.kind)
        for limits in (CHAT, TIGHT):  # shorter lists when the platform's limit is exceeded
            context = notification_context(n, previous, links, limits)
            body = (
                self.renderer.render_json(name, context)
                if fmt in JSON_FORMATS
                else self.renderer.render(name, context)
            )
            if fits(fmt, body):
                break
        return body, text

    async def deliver_pass(
        self,
        repo: str,
        sink: str,
        stop: asyncio.Event | None = None,
        *,
        block_ms: int | None = None,
    ) -> int:
        """Deliver what is in one outbox: pending jobs first (after a restart), then new ones."""
        stop = stop or asyncio.Event()
        await self.store.ensure_outbox_group(repo, sink)
        jobs = await self.store.read_outbox(repo, sink, self.consumer, pending=True)
        if not jobs:
            jobs = await self.store.reclaim_outbox(
                repo, sink, self.consumer, min_idle_ms=self.policy.reclaim_idle_ms
            )
        if not jobs:
            jobs = await self.store.read_outbox(repo, sink, self.consumer, block_ms=block_ms)
        done = 0
        for job in jobs:
            if stop.is_set() or not await self.deliver(repo, sink, job, stop):
                break
            done += 1
        return done

    async def deliver(self, repo: str, key: str, job: OutboxJob, stop: asyncio.Event) -> bool:
        """Deliver one job with retries. True when it is finished (delivered, skipped or dead)
        and acknowledged; False when stopping interrupted it (it stays pending)."""
        record = await self.store.delivery(repo, key, job.notification_id)
        if record is not None and record.state in DONE:
            await self.store.ack(repo, key, job.entry_id)  # a re-read after a crash: done before
            return True
        try:
            n = Notification.model_validate(job.job["notification"])
            config = _SINK_ADAPTER.validate_python(job.job["sink"])
        except (KeyError, ValidationError) as exc:
            await self._dead(repo, key, job, n=None, attempts=0, error=f"unreadable job: {exc}")
            return True
        sink = build_sink(config, self._http(), self.environ)
        current = await self.store.conversation(repo, key, n.slug)
        decided = plan(current, n, can_edit=sink.can_edit)
        if decided.action is Action.SKIP:
            await self.store.finish(
                repo, key, n.id, Delivery(DeliveryState.SKIPPED, last_error=decided.why),
                slug=n.slug, conversation=None,
            )  # fmt: skip
            await self.store.ack(repo, key, job.entry_id)
            log.info(
                "notification_skipped repo=%s slug=%s sink=%s why=%s",
                repo,
                n.slug,
                key,
                decided.why,
            )
            return True
        try:
            body, text = self.render(sink.format, n, decided.previous)
        except TemplateError as exc:
            await self._dead(repo, key, job, n=n, attempts=0, error=f"template error: {exc}")
            return True
        message = Message(n.id, str(n.kind), n.repo, n.slug, body, text, n.envelope)
        attempts = record.attempts if record else 0
        while True:
            try:
                message_id = await self._send(sink, decided.action, current, message)
            except DeliveryError as exc:
                attempts += 1
                if not exc.retryable or attempts >= self.policy.max_attempts:
                    await self._dead(repo, key, job, n=n, attempts=attempts, error=exc.message)
                    return True
                await self.store.record_attempt(repo, key, n.id, attempts, exc.message)
                delay = backoff(attempts, self.policy, exc.retry_after)
                log.warning(
                    "notification_retrying repo=%s slug=%s sink=%s attempt=%d in=%.2fs error=%s",
                    repo, n.slug, key, attempts, delay, exc.message,
                )  # fmt: skip
                if await sleep_until_stopped(stop, delay):
                    return False
                continue
            await self.store.finish(
                repo, key, n.id,
                Delivery(DeliveryState.DELIVERED, attempts + 1, message_id=message_id),
                slug=n.slug, conversation=after(n, message_id),
            )  # fmt: skip
            await self.store.ack(repo, key, job.entry_id)
            log.info(
                "notification_delivered repo=%s slug=%s kind=%s sink=%s action=%s",
                repo, n.slug, n.kind, key, decided.action,
            )  # fmt: skip
            return True

    async def _send(self, sink: Sink, action: Action, current: Any, message: Message) -> str | None:
        if action is Action.EDIT and current is not None and current.message_id:
            try:
                await sink.edit(current.message_id, message)
            except MessageGoneError:
                return await sink.post(message)
            return str(current.message_id)
        return await sink.post(message)

    async def _dead(
        self,
        repo: str,
        key: str,
        job: OutboxJob,
        *,
        n: Notification | None,
        attempts: int,
        error: str,
    ) -> None:
        letter_id = dead_letter_id(repo, key, job.notification_id)
        await self.store.dead_letter(
            {
                "id": letter_id,
                "repo": repo,
                "sink": key,
                "notification_id": job.notification_id,
                "kind": str(n.kind) if n else None,
                "slug": n.slug if n else None,
                "sha": n.sha if n else None,
                "attempts": attempts,
                "last_error": error,
                "at": _when(None),
                "job": job.job,
            }
        )
        await self.store.finish(
            repo, key, job.notification_id, Delivery(DeliveryState.DEAD, attempts, error),
            slug=n.slug if n else "", conversation=None,
        )  # fmt: skip
        await self.store.ack(repo, key, job.entry_id)
        log.error(
            "notification_dead_lettered repo=%s sink=%s id=%s dead_letter=%s attempts=%d error=%s",
            repo, key, job.notification_id, letter_id, attempts, error,
        )  # fmt: skip

    # -- the service -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run intake and every sink worker until `stop`; new repos and sinks are picked up.

        On stop, a send already on its way is allowed to finish and be recorded (see
        `DeliveryPolicy.stop_grace_seconds`) instead of being cut off after the chat showed it."""
        tasks: dict[str, asyncio.Task[None]] = {}
        # The workers watch their own event: set on `stop` and also when this service is
        # cancelled (`serve` cancels its services right after the stop signal), without
        # touching `stop`, which other services share.
        halt = asyncio.Event()
        try:
            while not stop.is_set():
                for name, factory in await self._wanted(halt):
                    task = tasks.get(name)
                    if task is None or task.done():
                        tasks[name] = asyncio.create_task(factory(), name=f"notify:{name}")
                await sleep_until_stopped(stop, self.policy.discover_seconds)
        finally:
            await self._wind_down(halt, list(tasks.values()))
            await self.close()

    async def _wind_down(self, halt: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        """Let every worker finish its current step (each ends its loop once `halt` is set),
        then cancel whatever still runs after the grace period."""
        halt.set()
        for wake in self._wake.values():
            wake.set()  # an idle outbox worker need not wait out its poll
        if not tasks:
            return
        try:
            await asyncio.wait(tasks, timeout=self.policy.stop_grace_seconds)
        finally:  # also when the wait itself is cancelled: no worker outlives the service
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wanted(self, stop: asyncio.Event) -> list[tuple[str, _TaskFactory]]:
        wanted: list[tuple[str, _TaskFactory]] = []
        for partition in self.runtime.keys.all_partitions():
            wanted.append((f"events:{partition}", self._loop(stop, self._events_step(partition))))
        config = self.runtime.server_config
        try:
            known = cast(set[str], await self.runtime.redis.smembers(self.runtime.keys.repos()))
            outboxes = await self.store.outboxes()
        except (RedisError, OSError) as exc:
            log.warning("notify_discovery_failed error=%s", type(exc).__name__)
            return wanted
        for repo in sorted(set(config.repos) | known):
            if self.sinks_for(repo):
                wanted.append((f"changes:{repo}", self._loop(stop, self._changes_step(repo))))
        for repo, key in outboxes:
            self._wake.setdefault((repo, key), asyncio.Event())
            wanted.append(
                (f"outbox:{repo}:{key}", self._loop(stop, self._outbox_step(repo, key, stop)))
            )
        return wanted

    def _events_step(self, partition: int) -> Callable[[], Awaitable[int]]:
        return lambda: self.intake_events(partition, block_ms=self.policy.block_ms)

    def _changes_step(self, repo: str) -> Callable[[], Awaitable[int]]:
        return lambda: self.intake_changes(repo, block_ms=self.policy.block_ms)

    def _outbox_step(
        self, repo: str, key: str, stop: asyncio.Event
    ) -> Callable[[], Awaitable[int]]:
        wake = self._wake[(repo, key)]

        async def step() -> int:
            wake.clear()
            done = await self.deliver_pass(repo, key, stop)
            if not done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.policy.block_ms / 1000)
            return done

        return step

    def _loop(self, stop: asyncio.Event, step: Callable[[], Awaitable[int]]) -> _TaskFactory:
        async def loop() -> None:
            await keep_running(stop, step, name="notify")

        return loop


async def delivery_service(runtime: Runtime, stop: asyncio.Event) -> None:
    await Notifier(runtime).run(stop)
