"""Configuration: server settings from MERGEBOT_* variables, and the TOML files (SPEC §9).

Precedence for a repo: built-in defaults < the server file's `[defaults]` < its
`[repos."owner/name"]` table < the repo's own `.github/mergebot.toml` on its base branch (which may
not set `remote`, `forge` or `mode`: those decide what mergebot may do to the repo, so only the
operator sets them). Every layer is validated on its own, so each problem names its file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mergebot.gate import Window, WindowError, parse_window
from mergebot.ids import branch_problem, is_repo
from mergebot.redis_url import RedisUrlError, redis_target

REMOTE_NAME = "origin"
SERVER_ONLY_KEYS = frozenset({"remote", "forge", "mode", "cutover"})


# Settings that may hold a secret: each can also be given as a file (`MERGEBOT_API_TOKEN_FILE`,
# the Docker secrets convention), so the value need not sit in any process environment.
SECRET_SETTINGS = (
    "webhook_secret",
    "api_token",
    "github_token",
    "github_private_key",
    "git_password",
    "redis_url",
)


def file_variable(field: str) -> str:
    return f"MERGEBOT_{field.upper()}_FILE"


class _SecretFiles(PydanticBaseSettingsSource):
    """`MERGEBOT_<NAME>_FILE`: the value of a secret setting read from a file (one trailing
    newline dropped). Setting both the variable and its `_FILE` is refused: which one wins would
    be a guess."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every file at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        problems: list[ConfigProblem] = []
        for field in SECRET_SETTINGS:
            name = file_variable(field)
            path = os.environ.get(name)
            if not path:
                continue
            if os.environ.get(f"MERGEBOT_{field.upper()}"):
                problems.append(
                    ConfigProblem("environment", name, f"MERGEBOT_{field.upper()} is set too")
                )
                continue
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                problems.append(ConfigProblem("environment", name, f"{path}: {reason}"))
                continue
            values[field] = text.removesuffix("\n").removesuffix("\r")
        if problems:
            raise ConfigError(problems)
        return values


class Settings(BaseSettings):
    """Process settings; read once in bootstrap, never at import time."""

    model_config = SettingsConfigDict(env_prefix="MERGEBOT_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFiles(settings_cls))

    redis_url: str | None = None
    # Talk to MERGEBOT_REDIS_URL as a node of a Redis Cluster (as its `redis+cluster://` scheme
    # does); see mergebot.store.connection.
    redis_cluster: bool = False
    webhook_secret: SecretStr | None = None
    api_token: SecretStr | None = None
    github_token: SecretStr | None = None
    github_app_id: int | None = None
    github_private_key: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    # Credentials for https git remotes (handed to git through GIT_ASKPASS, never in a URL).
    git_username: str | None = None
    git_password: SecretStr | None = None
    data_dir: Path = Path(".mergebot")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    url: str | None = None
    config: Path | None = None
    key_prefix: str = "mergebot:v1"
    event_partitions: int = Field(default=1, ge=1, le=1024)
    # How long a processor's hold on an event-log partition outlives its last renewal (renewed
    # every third of it): a replacement folds within this much of a holder dying.
    processor_lease_ttl_seconds: float = Field(default=6.0, gt=0)
    # Slugs finished longer ago than this leave the projection; older log entries are trimmed
    # (into a snapshot replay starts from). See mergebot.compaction.
    retention_days: float = Field(default=30, gt=0)
    # Ingest requests (POST /events, /webhook) in flight before more are answered 503 at once.
    # What waits in flight waits about bound / rate: 16 is 4 ms at the 4,000 requests/s a
    # process stores on 2 cores, and more than a producer or GitHub sends at once in normal
    # operation. Measured at twice that rate, 32 let the accepted requests crowd the event
    # loop (refusals waited 73-98 ms at p99 and fewer requests got in); 16 kept refusals under
    # 20 ms and accepted twice as many (docs/benchmarks.md).
    max_ingest_in_flight: int = Field(default=16, ge=1)
    # How often a server process collects the objects frozen out of the garbage collector's
    # reach after its full collections (mergebot.collector): the one long pause of a period.
    gc_deep_collection_seconds: float = Field(default=3600, gt=0)
    # How often the open pull requests of GitHub repos are compared with the event log.
    reconcile_interval_seconds: float = Field(default=600, gt=0)
    # Spacing of GitHub writes (GitHub asks for about a second between content-creating calls).
    github_seconds_between_writes: float = Field(default=1.0, ge=0)
    # Who runs check commands when the server runs as root: a user name or a numeric uid. It must
    # exist (mergebot creates no user); it needs no home, no shell and no rights of its own.
    check_user: str = "nobody"
    # Check commands in a bubblewrap sandbox: "auto" when `bwrap` works here, "bwrap" always
    # (the server refuses to start without it), "none" never.
    check_sandbox: Literal["auto", "bwrap", "none"] = "auto"
    # At most this many bytes (as JSON) of extra, unknown fields per canonical event.
    max_extra_field_bytes: int = Field(default=64 * 1024, ge=0, le=16 * 1024 * 1024)

    @field_validator("redis_url")
    @classmethod
    def _redis_url_readable(cls, value: str | None) -> str | None:
        if value:
            redis_target(value)  # a RedisUrlError is a ValueError: pydantic reports it
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_has_a_url(cls, value: bool, info: ValidationInfo) -> bool:
        if not value or "redis_url" not in info.data:  # a bad URL is reported on its own
            return value
        url = info.data["redis_url"]
        if not url:
            raise ValueError(
                "needs MERGEBOT_REDIS_URL (a node of the cluster): "
                "the embedded Redis is a single server"
            )
        try:
            redis_target(url, cluster=True)
        except RedisUrlError as exc:
            raise ValueError(f"MERGEBOT_REDIS_URL: {exc}") from None
        return value

    def server_url(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"

    def secret_values(self) -> list[str]:
        """Every secret value of these settings (to mask in logs and hide from checks)."""
        out: list[str] = []
        for name in SECRET_SETTINGS:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out.append(value.get_secret_value())
            elif name == "redis_url" and value:
                password = urlsplit(value).password
                if password:
                    out.append(password)
        return [v for v in out if v]

    def config_path(self) -> Path | None:
        """MERGEBOT_CONFIG, else ./mergebot.toml when it exists (embedded defaults otherwise)."""
        if self.config is not None:
            return self.config
        default = Path("mergebot.toml")
        return default if default.exists() else None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (plus command-line overrides); bad values → ConfigError.

    Each problem names the variable (`MERGEBOT_PORT`), never its value: a value may be a secret.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            field = str(err["loc"][0]) if err["loc"] else ""
            key = f"MERGEBOT_{field.upper()}" if field else "<settings>"
            problems.append(ConfigProblem("environment", key, err["msg"]))
        raise ConfigError(problems) from None


class MergeMethod(StrEnum):
    MERGE = "merge"
    REBASE = "rebase"
    SQUASH = "squash"


class Mode(StrEnum):
    LIVE = "live"
    SHADOW = "shadow"


class Forge(StrEnum):
    GITHUB = "github"
    GIT = "git"


class NotifyEvent(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    COMPLETED = "completed"
    BLOCKED = "blocked"
    RESUMED = "resumed"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    # The queue of a base, not one candidate: a person's freeze, or a red base (and back).
    FROZEN = "frozen"
    UNFROZEN = "unfrozen"


# Freezes are on by default: a queue that stopped (a red base above all) is what admins must hear.
_DEFAULT_NOTIFY_EVENTS = [
    NotifyEvent.COMPLETED,
    NotifyEvent.BLOCKED,
    NotifyEvent.FROZEN,
    NotifyEvent.UNFROZEN,
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SinkBase(_Strict):
    events: list[NotifyEvent] = Field(default_factory=lambda: list(_DEFAULT_NOTIFY_EVENTS))


class SlackSink(_SinkBase):
    sink: Literal["slack"]
    url_env: str | None = None
    bot_token_env: str | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api"

    @model_validator(mode="after")
    def _destination(self) -> SlackSink:
        if not self.url_env and not (self.bot_token_env and self.channel):
            raise ValueError(
                "a slack sink needs url_env (an incoming webhook) or bot_token_env and channel"
            )
        if bool(self.bot_token_env) != bool(self.channel):
            raise ValueError("bot_token_env and channel go together (chat.postMessage needs both)")
        return self


class DiscordSink(_SinkBase):
    sink: Literal["discord"]
    url_env: str


class TelegramSink(_SinkBase):
    sink: Literal["telegram"]
    token_env: str
    chat_id: str
    api_url: str = "https://api.telegram.org"


class WebhookSink(_SinkBase):
    sink: Literal["webhook"]
    url: str
    secret_env: str | None = None


class LogSink(_SinkBase):
    sink: Literal["log"]


NotifySink = Annotated[
    SlackSink | DiscordSink | TelegramSink | WebhookSink | LogSink, Field(discriminator="sink")
]


class ChecksConfig(_Strict):
    required: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=1800, gt=0)
    discovery_timeout_seconds: float = Field(default=600, gt=0)
    # A failed check is run again on the same commit up to this many times before anything is
    # blocked or bisected; a check that failed and then passed is recorded as flaky.
    retry_failed: int = Field(default=0, ge=0, le=5)


class BatchConfig(_Strict):
    """Batches (SPEC §13): up to `max_size` queued candidates in one integration commit, checked
    once. `wait_seconds` 0 takes what is queued now; otherwise, when fewer than `max_size` are
    queued, the oldest waits up to that long for a fuller batch."""

    max_size: int = Field(default=1, ge=1, le=100)
    wait_seconds: float = Field(default=0, ge=0, le=3600)


class PipelineConfig(_Strict):
    """The train (SPEC §13): how many candidates are under test at once.

    `depth` 1 is one candidate at a time. `adaptive` starts the window at `depth`, grows it by one
    after each landing up to `max_depth` and halves it after a failure (floor 1)."""

    depth: int = Field(default=1, ge=1, le=100)
    max_depth: int = Field(default=8, ge=1, le=100)
    adaptive: bool = False

    @model_validator(mode="after")
    def _depth_within_max(self) -> PipelineConfig:
        if self.depth > self.max_depth:
            raise ValueError(f"depth ({self.depth}) is larger than max_depth ({self.max_depth})")
        return self


class CutoverConfig(_Strict):
    """The bar a repo's shadow record must meet before `mode = "live"` takes effect (see
    `mergebot.cutover.gate`). With neither threshold set there is no bar."""

    min_parity: float | None = Field(default=None, ge=0, le=1)
    min_decisions: int | None = Field(default=None, ge=0)
    accepted: bool = False

    @property
    def has_bar(self) -> bool:
        return self.min_parity is not None or self.min_decisions is not None


def _check_window(text: str) -> str:
    try:
        parse_window(text)
    except WindowError as exc:
        raise ValueError(str(exc)) from None
    return text


class FreezeConfig(_Strict):
    """Scheduled freezes: while a window is open, candidates are queued and checked but base
    does not move (`mergebot.gate`)."""

    windows: list[Annotated[str, AfterValidator(_check_window)]] = Field(default_factory=list)
    # How often an integrator holding a checked candidate looks again without being woken
    # (a window's end, a fixing push to a red base); a freeze or unfreeze wakes it at once.
    recheck_seconds: float = Field(default=30, gt=0)

    def parsed(self) -> list[Window]:
        return [parse_window(text) for text in self.windows]


class ClearanceConfig(_Strict):
    """A clear base before every move: `required` forge checks must be green on the base tip;
    `commands` run on a base tip mergebot did not make (a push to base by someone else)."""

    required: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=600, gt=0)


class RepoConfig(_Strict):
    """The effective configuration of one managed repo."""

    remote: str | None = None
    forge: Forge = Forge.GIT
    mode: Mode = Mode.LIVE
    base_branch: str = "main"
    merge_method: MergeMethod = MergeMethod.MERGE
    required_approvals: int = Field(default=1, ge=1)
    approvals_bind_to_sha: bool = True
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    integration_branch_prefix: str = "mergebot/integration/"
    grace_seconds: float = Field(default=10, ge=0)
    lease_ttl_seconds: float = Field(default=120, gt=0)
    lease_renew_seconds: float = Field(default=30, gt=0)
    notify: list[NotifySink] = Field(default_factory=list)
    cutover: CutoverConfig = Field(default_factory=CutoverConfig)
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)
    clearance: ClearanceConfig = Field(default_factory=ClearanceConfig)

    def secret_env_names(self) -> list[str]:
        """Environment variables the notify sinks read secrets from."""
        names: list[str] = []
        for sink in self.notify:
            for attr in ("token_env", "url_env", "secret_env", "bot_token_env"):
                value = getattr(sink, attr, None)
                if value:
                    names.append(str(value))
        return names

    @field_validator("base_branch")
    @classmethod
    def _valid_base(cls, value: str) -> str:
        problem = branch_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("integration_branch_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        problem = branch_problem(value + "x")
        if problem:
            raise ValueError(problem)
        return value


class DefaultsConfig(RepoConfig):
    manage_all_repos: bool = False
    templates_dir: str | None = None


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class ServerConfig:
    """The parsed server file: defaults plus one raw table per managed repo."""

    defaults: dict[str, Any]
    repos: dict[str, dict[str, Any]]
    manage_all_repos: bool = False
    templates_dir: str | None = None
    source: str = "<built-in defaults>"
    # Each repo's effective config once built: asked for several times per status call or
    # batch, it is a validation of the whole table each time (the config and the result are
    # both frozen; a reloaded file is a new ServerConfig).
    _built: dict[str, RepoConfig] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def repo(self, repo: str) -> RepoConfig:
        """The server-side effective config of `repo` (before its own .github/mergebot.toml)."""
        built = self._built.get(repo)
        if built is None:
            merged = _deep_merge(self.defaults, self.repos.get(repo, {}))
            built = self._built[repo] = RepoConfig.model_validate(merged)
        return built

    def managed(self, repo: str) -> bool:
        return repo in self.repos or self.manage_all_repos

    def secret_env_names(self) -> list[str]:
        """The variables every configured notify sink reads a secret from."""
        configs = [RepoConfig.model_validate(self.defaults)]
        configs += [self.repo(name) for name in self.repos]
        return sorted({name for config in configs for name in config.secret_env_names()})


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _problems(file: str, prefix: str, exc: ValidationError) -> list[ConfigProblem]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err["loc"]]
        # Drop the union-member tag pydantic inserts for discriminated sinks (notify.0.slack.url).
        key = ".".join([prefix, *loc] if prefix else loc) or "<file>"
        reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(ConfigProblem(file, key, reason))
    return out


def _parse_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(file, "<syntax>", str(exc))]) from None


def parse_server_config(text: str, file: str) -> ServerConfig:
    data = _parse_toml(text, file)
    problems: list[ConfigProblem] = []
    for key in data:
        if key not in ("defaults", "repos"):
            problems.append(
                ConfigProblem(file, key, "unknown key (expected [defaults] or [repos])")
            )
    raw_defaults = data.get("defaults", {})
    raw_repos = data.get("repos", {})
    defaults: dict[str, Any] = {}
    manage_all = False
    templates_dir = None
    if not isinstance(raw_defaults, dict):
        problems.append(ConfigProblem(file, "defaults", "must be a table"))
    else:
        try:
            parsed = DefaultsConfig.model_validate(raw_defaults)
            manage_all, templates_dir = parsed.manage_all_repos, parsed.templates_dir
        except ValidationError as exc:
            problems += _problems(file, "defaults", exc)
        defaults = {
            k: v for k, v in raw_defaults.items() if k not in ("manage_all_repos", "templates_dir")
        }
    repos: dict[str, dict[str, Any]] = {}
    if not isinstance(raw_repos, dict):
        problems.append(ConfigProblem(file, "repos", "must be a table of repo tables"))
        raw_repos = {}
    for name, table in raw_repos.items():
        prefix = f'repos."{name}"'
        if not is_repo(name):
            problems.append(ConfigProblem(file, prefix, "repo names have the form owner/name"))
            continue
        if not isinstance(table, dict):
            problems.append(ConfigProblem(file, prefix, "must be a table"))
            continue
        try:
            RepoConfig.model_validate(table)
            RepoConfig.model_validate(_deep_merge(defaults, table))
        except ValidationError as exc:
            problems += _problems(file, prefix, exc)
        repos[name] = table
    if problems:
        raise ConfigError(problems)
    return ServerConfig(defaults, repos, manage_all, templates_dir, file)


def load_server_config(path: Path | None) -> ServerConfig:
    """The server file at `path`, or built-in defaults with no managed repo when there is none."""
    if path is None:
        return ServerConfig({}, {})
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), "<file>", exc.strerror or str(exc))]) from None
    return parse_server_config(text, str(path))


def apply_repo_file(base: RepoConfig, text: str, file: str = ".github/mergebot.toml") -> RepoConfig:
    """Overlay a repo's own config file on its server-side config."""
    data = _parse_toml(text, file)
    problems = [
        ConfigProblem(file, key, "may only be set in the server's config file")
        for key in data
        if key in SERVER_ONLY_KEYS
    ]
    try:
        RepoConfig.model_validate(data)
    except ValidationError as exc:
        problems += _problems(file, "", exc)
    if problems:
        raise ConfigError(problems)
    merged = _deep_merge(base.model_dump(mode="json", exclude_unset=False), data)
    return RepoConfig.model_validate(merged)


def check_file(path: Path) -> dict[str, Any]:
    """Validate a server file or a repo file (`.github/mergebot.toml`); the effective config.

    Raises ConfigError listing every problem found.
    """
    if path.parent.name == ".github":
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigProblem(str(path), "<file>", str(exc))]) from None
        return apply_repo_file(RepoConfig(), text, str(path)).model_dump(mode="json")
    server = load_server_config(path)
    return {
        "defaults": {
            **RepoConfig.model_validate(server.defaults).model_dump(mode="json"),
            "manage_all_repos": server.manage_all_repos,
            "templates_dir": server.templates_dir,
        },
        "repos": {name: server.repo(name).model_dump(mode="json") for name in server.repos},
    }
