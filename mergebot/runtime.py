"""The Runtime: what every part of a running mergebot shares, each store and service a typed field.

Nothing is created at import time anywhere in mergebot; commands call `open_runtime` and pass the
resulting `Runtime` down, so tests can build a Runtime around their own Redis and key prefix (and
set a field, such as `forge_override` or `git_facts`, to a fake). What runs in a process, and in
which order, is decided by the composition root, `mergebot.main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

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
from mergebot.forge.repo_config import EffectiveConfigs
from mergebot.git.credentials import CredentialSource, GitCredentials, TokenSource
from mergebot.git.facts import GitFactsSource
from mergebot.git.mirror import Mirror, mirror_path
from mergebot.handoff import ReadyHook
from mergebot.logmask import masking, secret_values
from mergebot.store.batching import BatchingClient
from mergebot.store.connection import RedisClient, connect
from mergebot.store.embedded import EmbeddedRedis
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from mergebot.store.projection import ProjectionCache

if TYPE_CHECKING:
    from mergebot.forge.github import GitHubForge


def utc_now() -> datetime:
    return datetime.now(UTC)


class ForgeUnavailableError(LookupError):
    """No forge can be built for a repo (it is not managed here)."""


@dataclass
class PlacedCandidates:
    """The status's candidate list with each active item's place in the train, for one (queue
    version, projection rev) and one train; `body` is its UTF-8 JSON once the queue API wrote
    it."""

    mark: tuple[tuple[str, str | None], str] | None
    entries: list[dict[str, Any]]
    body: bytes | None = None


@dataclass
class Runtime:
    """What every part of a running mergebot shares: settings, config, storage handles, and the
    process-wide objects the parts hand each other (each one a typed field)."""

    settings: Settings
    server_config: ServerConfig
    redis: RedisClient
    keys: Keys
    eventlog: EventLog
    # Where `redis` connects (None when the client was built elsewhere): what another process
    # needs to open the same store, as a replay that shares out its repos does.
    redis_url: str | None = None
    # One Mirror (and its lock) per repo, shared by the processor's git facts and the integrator.
    mirrors: dict[str, Mirror] = field(default_factory=dict, repr=False)
    # Set by the integrator's service while it runs; the processor announces queued work to it.
    ready_hook: ReadyHook | None = None
    # Where the processor asks git; None: the mirrors above (tests set a fake).
    git_facts: GitFactsSource | None = None
    # The repos' effective configs, read once per base sha (built by the processor on first use).
    effective_configs: EffectiveConfigs | None = None
    # Parsed projections, shared by the dashboard, the queue API and status.
    projection_cache: ProjectionCache = field(default_factory=ProjectionCache, repr=False)
    # (repo, base) -> ((queue version, projection rev), the status's candidate list then, how
    # many of them are active items).
    status_candidates: dict[
        tuple[str, str], tuple[tuple[str, str | None], list[dict[str, Any]], int]
    ] = field(default_factory=dict, repr=False)
    # (repo, base) -> that list with each active item's place in the train, for one train.
    status_placed: dict[tuple[str, str], PlacedCandidates] = field(default_factory=dict, repr=False)
    # The queue position last shown on GitHub for each queued item (the reporter's memory).
    reported_positions: dict[str, int] = field(default_factory=dict, repr=False)
    # The freeze last shown on the check runs of each repo's waiting candidates (the reporter's).
    reported_holds: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    # Set when the server file was read again (SIGHUP): services that depend on it look again.
    config_reloaded: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Every repo's forge, instead of the configured ones (tests set a fake).
    forge_override: Callable[[str], ForgeProtocol] | None = None
    # The wall clock of decisions that depend on the time of day (freeze windows, a freeze's
    # `until`); tests set their own instead of sleeping.
    clock: Callable[[], datetime] = field(default=utc_now, repr=False)
    _forges: dict[str, ForgeProtocol] = field(default_factory=dict, repr=False)
    # The client and event log of `batched_reads()` (made on first use).
    _batched: tuple[RedisClient, EventLog] | None = field(default=None, repr=False)

    def batched_reads(self) -> Runtime:
        """This runtime with a client that sends the commands asked for together as one
        pipeline (`mergebot.store.batching`), for a reader that fans out many small reads at
        once. Made anew at each call, so no field set on this runtime later is missed; the
        caches it shares are the same objects. A cluster client is kept as it is."""
        if self._batched is None:
            client = self.redis
            if isinstance(client, BatchingClient) or not isinstance(client, aioredis.Redis):
                self._batched = (client, self.eventlog)
            else:
                batching = BatchingClient(client)
                self._batched = (batching, EventLog(batching, self.keys))
        redis, eventlog = self._batched
        return replace(self, redis=redis, eventlog=eventlog)

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

        Mirrors live in `mirrors`, the registry the processor's git facts use too, so the
        processor and the integrator share one Mirror (and its lock) per repo."""
        mirror = self.mirrors.get(repo)
        if mirror is None:
            mirror = Mirror(
                mirror_path(self.settings.data_dir, repo),
                self.remote_url(repo),
                credentials=self.git_credentials(repo),
            )
            self.mirrors[repo] = mirror
        elif mirror.credentials is None:
            mirror.credentials = self.git_credentials(repo)
        return mirror

    def forge_for(self, repo: str) -> ForgeProtocol:
        """The forge adapter of `repo`: GitHub, or a plain git remote without CI.

        `forge_override` takes precedence (tests set a fake)."""
        if self.forge_override is not None:
            return self.forge_override(repo)
        if not self.server_config.managed(repo):
            raise ForgeUnavailableError(f"no forge is configured for {repo}: not a managed repo")
        kind = self.server_config.repo(repo).forge
        if kind is Forge.GIT:
            return PlainGitForge(self.mirror_for)
        return self._github_forge()

    def _github_forge(self) -> GitHubForge:
        """The one GitHub adapter of this process (its App installation tokens are shared by the
        API calls and by git). Imported on first use: PyGithub is only loaded when needed."""
        from mergebot.forge.github import GitHubForge  # noqa: PLC0415 (PyGithub loads on use)

        forge = self._forges.get(Forge.GITHUB.value)
        if not isinstance(forge, GitHubForge):
            forge = GitHubForge.from_settings(self.settings)
            self._forges[Forge.GITHUB.value] = forge
        return forge

    def forge_has_comments(self, repo: str) -> bool:
        """Does `repo`'s forge have pull requests to read commands from and comment on?
        (A plain git remote has none; a test's `forge_override` fake does.)"""
        if self.forge_override is not None:
            return True
        return self.server_config.managed(repo) and (
            self.server_config.repo(repo).forge is Forge.GITHUB
        )

    def close_mirrors(self) -> None:
        for mirror in self.mirrors.values():
            mirror.close()


def build_runtime(
    settings: Settings,
    server_config: ServerConfig,
    redis: RedisClient,
    keys: Keys,
    *,
    redis_url: str | None = None,
) -> Runtime:
    return Runtime(settings, server_config, redis, keys, EventLog(redis, keys), redis_url)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    server_config: ServerConfig | None = None,
    server: bool = False,
    keys: Keys | None = None,
) -> AsyncIterator[Runtime]:
    """Connect to Redis (starting the embedded server when no URL is set) for the block.

    `server=True` is for the long-running processes (`serve`, `web`, `worker`): they refuse to
    start when another one already runs the embedded Redis of the data dir. Short CLI commands
    (`events`, `status`…) connect to that running server instead, and leave it running.
    `keys`, when given, instead of the settings' prefix and partitions: a process that continues
    another's work (a share of a replay) opens the store as that one holds it.
    """
    config = server_config or load_server_config(settings.config_path())
    keys = keys or Keys(prefix=settings.key_prefix, partitions=settings.event_partitions)
    secrets = [*settings.secret_values(), *(os.environ.get(n) for n in config.secret_env_names())]
    with masking(secret_values(secrets)):
        embedded: EmbeddedRedis | None = None
        url = settings.redis_url
        if not url:
            embedded = EmbeddedRedis(settings.data_dir)
            url = embedded.start(share=not server)
        client = connect(url, cluster=settings.redis_cluster)
        runtime = build_runtime(settings, config, client, keys, redis_url=url)
        try:
            yield runtime
        finally:
            runtime.close_mirrors()
            await client.aclose()
            if embedded is not None:
                embedded.stop()
