"""The plain git forge: no CI, neutral answers, files read from the mirror; and forge_for."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergebot.config import ConfigError, Settings, parse_server_config
from mergebot.forge.base import Permission
from mergebot.forge.plain import PlainGitForge
from mergebot.runtime import build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.gitutil import GitRemote


async def test_plain_forge_reads_files_from_the_mirror_and_has_no_ci(
    remote: GitRemote, tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    remote.commit(".github/mergebot.toml", 'merge_method = "squash"', "config without newline")
    sha = remote.push("main")
    server = parse_server_config(
        f'[repos."acme/widgets"]\nremote = "{remote.url}"\nforge = "git"\n', "mergebot.toml"
    )
    runtime = build_runtime(Settings(data_dir=tmp_path / "data"), server, redis, keys)
    try:
        forge = runtime.forge_for("acme/widgets")
        assert isinstance(forge, PlainGitForge)
        runtime.mirror_for("acme/widgets").fetch()
        assert await forge.read_file("acme/widgets", "main", ".github/mergebot.toml") == (
            'merge_method = "squash"'
        )
        assert await forge.read_file("acme/widgets", sha, "README.md") == "hello\n"
        assert await forge.read_file("acme/widgets", "main", "missing.txt") is None
        assert await forge.read_file("acme/widgets", "nope", "README.md") is None
        assert await forge.read_file("acme/widgets", "main", "../etc/passwd") is None
        assert await forge.read_file("acme/widgets", "main", "--output=x") is None
        assert await forge.check_results("acme/widgets", sha) == []
        assert await forge.recent_check_names("acme/widgets", "mergebot/", 7) == set()
        assert await forge.permission("acme/widgets", "anyone") is Permission.WRITE
        assert runtime.mirror_for("acme/widgets") is runtime.mirror_for("acme/widgets")
    finally:
        runtime.close_mirrors()


async def test_a_git_forge_without_remote_is_a_config_error(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    server = parse_server_config('[repos."acme/widgets"]\nforge = "git"\n', "mergebot.toml")
    runtime = build_runtime(Settings(data_dir=tmp_path), server, redis, keys)
    with pytest.raises(ConfigError, match=r'repos\."acme/widgets"\.remote: required'):
        runtime.mirror_for("acme/widgets")
