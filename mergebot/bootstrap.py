"""The one place that builds concrete objects from settings and wires them together.

Nothing is created at import time anywhere in mergebot; commands call `open_runtime` and pass the
resulting `Runtime` down, so tests can build a Runtime around their own Redis and key prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mergebot.config import (
    ConfigError,
    ConfigProblem,
    Forge,
    ServerConfig,
    Settings,
    load_server_config,
)
from mergebot.forge.base import Forge as ForgeProtocol
from mergebot.forge.plain import PlainGitForge
from mergebot.git.credentials import CredentialSource, GitCredentials, TokenSource
from mergebot.git.mirror import Mirror, mirror_path
from mergebot.logmask import masking, secret_values
from mergebot.modules import optional_import
from mergebot.store.connection import connect
from mergebot.store.embedded import EmbeddedRedis
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys


class ForgeUnavailableError(LookupError):
    """No forge can be built for a repo (it is not managed here)."""


@dataclass
class Runtime:
    """What every part of a running mergebot shares: settings, config and storage handles."""

    settings: Settings
    server_config: ServerConfig
    redis: aioredis.Redis
    keys: Keys
    eventlog: EventLog
    # Components register themselves here (processor hooks, forge clients…) during start-up.
    extras: dict[str, Any] = field(default_factory=dict)
    _forges: dict[str, ForgeProtocol] = field(default_factory=dict, repr=False)

    def remote_url(self, repo: str) -> str:
        """Where a managed repo's git remote is: its `remote`, or GitHub's clone URL."""
        config = self.server_config.repo(repo)
        if config.remote:
            return config.remote
        if config.forge is Forge.GITHUB:
            api = urlsplit(self.settings.github_api_url)
            host = "github.com" if api.hostname == "api.github.com" else api.netloc
            return f"https://{host}/{repo}.git"
        raise ConfigError(
            [
                ConfigProblem(
                    self.server_config.source,
                    f'repos."{repo}".remote',
                    'required when forge = "git"',
                )
            ]
        )

    def git_credentials(self, repo: str) -> CredentialSource | None:
        """Credentials for https remotes: MERGEBOT_GIT_USERNAME/MERGEBOT_GIT_PASSWORD, else the
        GitHub token for GitHub repos, else the GitHub App's installation token of the repo (asked
        of the GitHub adapter at every git call: it mints and renews it), else none (git's own
        credential helpers then apply)."""
        settings = self.settings
        if settings.git_password is not None:
            return GitCredentials(settings.git_username or "git", settings.git_password)
        if self.server_config.repo(repo).forge is not Forge.GITHUB:
            return None
        if settings.github_token:
            return GitCredentials("x-access-token", settings.github_token)
        if settings.github_app_id is not None and settings.github_private_key is not None:
            forge = self._github_forge()
            return TokenSource("x-access-token", lambda: str(forge.git_token(repo)))
        return None

    def mirror_for(self, repo: str) -> Mirror:
        """The one mirror of `repo` in this process (created on first use).

        Mirrors live in `extras["mirrors"]`, the registry the processor's git facts use too, so
        the processor and the integrator share one Mirror (and its lock) per repo."""
        mirrors: dict[str, Any] = self.extras.setdefault("mirrors", {})
        mirror = mirrors.get(repo)
        if not isinstance(mirror, Mirror):
            mirror = Mirror(
                mirror_path(self.settings.data_dir, repo),
                self.remote_url(repo),
                credentials=self.git_credentials(repo),
            )
            mirrors[repo] = mirror
        elif mirror.credentials is None:
            mirror.credentials = self.git_credentials(repo)
        return mirror

    def forge_for(self, repo: str) -> ForgeProtocol:
        """The forge adapter of `repo`: GitHub, or a plain git remote without CI.

        A factory registered as `extras["forge_for"]` takes precedence (tests register fakes)."""
        override = self.extras.get("forge_for")
        if override is not None:
            return cast(ForgeProtocol, override(repo))
        if not self.server_config.managed(repo):
            raise ForgeUnavailableError(f"no forge is configured for {repo}: not a managed repo")
        kind = self.server_config.repo(repo).forge
        if kind is Forge.GIT:
            return PlainGitForge(self.mirror_for)
        return cast(ForgeProtocol, self._github_forge())

    def _github_forge(self) -> Any:
        """The one GitHub adapter of this process (its App installation tokens are shared by the
        API calls and by git). Imported on first use: PyGithub is only loaded when needed."""
        forge = self._forges.get(Forge.GITHUB.value)
        if forge is None:
            module = importlib.import_module("mergebot.forge.github")
            forge = module.GitHubForge.from_settings(self.settings)
            self._forges[Forge.GITHUB.value] = forge
        return forge

    def forge_has_comments(self, repo: str) -> bool:
        """Does `repo`'s forge have pull requests to read commands from and comment on?
        (A plain git remote has none; a test's `extras["forge_for"]` fake does.)"""
        if self.extras.get("forge_for") is not None:
            return True
        return self.server_config.managed(repo) and (
            self.server_config.repo(repo).forge is Forge.GITHUB
        )

    def close_mirrors(self) -> None:
        for mirror in self.extras.get("mirrors", {}).values():
            if isinstance(mirror, Mirror):
                mirror.close()


def build_runtime(
    settings: Settings, server_config: ServerConfig, redis: aioredis.Redis, keys: Keys
) -> Runtime:
    return Runtime(settings, server_config, redis, keys, EventLog(redis, keys))


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, server_config: ServerConfig | None = None, server: bool = False
) -> AsyncIterator[Runtime]:
    """Connect to Redis (starting the embedded server when no URL is set) for the block.

    `server=True` is for the long-running processes (`serve`, `web`, `worker`): they refuse to
    start when another one already runs the embedded Redis of the data dir. Short CLI commands
    (`events`, `status`…) connect to that running server instead, and leave it running.
    """
    config = server_config or load_server_config(settings.config_path())
    keys = Keys(prefix=settings.key_prefix, partitions=settings.event_partitions)
    secrets = [*settings.secret_values(), *(os.environ.get(n) for n in config.secret_env_names())]
    with masking(secret_values(secrets)):
        embedded: EmbeddedRedis | None = None
        url = settings.redis_url
        if not url:
            embedded = EmbeddedRedis(settings.data_dir)
            url = embedded.start(share=not server)
        client = connect(url)
        runtime = build_runtime(settings, config, client, keys)
        try:
            yield runtime
        finally:
            runtime.close_mirrors()
            await client.aclose()
            if embedded is not None:
                embedded.stop()


# A background service runs until `stop` is set; `serve` and `worker` run every one of them.
BackgroundService = Callable[[Runtime, asyncio.Event], Awaitable[None]]
_log = logging.getLogger("mergebot.services")


async def sleep_until_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less when `stop` is set meanwhile; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def keep_running(
    stop: asyncio.Event, step: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Run a service's `step` again and again until `stop`. Redis being away is expected (a
    warning, then a retry with backoff up to 30 s); any other failure is a bug that must not end
    the service silently (logged with its traceback, then retried up to every minute)."""
    failures = 0
    while not stop.is_set():
        try:
            await step()
        except (RedisError, OSError) as exc:
            failures += 1
            delay = min(30.0, 0.5 * 2 ** min(failures, 6))
            _log.warning("%s_redis_error error=%s retry_in=%.1fs", name, type(exc).__name__, delay)
        except Exception:
            failures += 1
            delay = min(60.0, 1.0 * 2 ** min(failures, 6))
            _log.exception("%s_step_failed retry_in=%.1fs", name, delay)
        else:
            failures = 0
            continue
        await sleep_until_stopped(stop, delay)


# Modules that contribute background services through a `SERVICES` tuple, if they exist.
SERVICE_MODULES = (
    "mergebot.integrator",  # first: it registers the processor's READY hook
    "mergebot.processor",
    "mergebot.notify.delivery",
    "mergebot.forge.reconcile",
    "mergebot.forge.reporter",
    "mergebot.github.command_worker",
)


def background_services() -> list[BackgroundService]:
    services: list[BackgroundService] = []
    for name in SERVICE_MODULES:
        module = optional_import(name)
        if module is not None:
            services.extend(getattr(module, "SERVICES", ()))
    return services
