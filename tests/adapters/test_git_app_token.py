"""With GitHub App authentication, git fetches and pushes authenticate with the installation token
the GitHub adapter mints (user `x-access-token`), asked for anew at every git call, so an expired
token is never reused; the token is never written into the remote URL, the mirror's config or a log.

GitHub's token minting is served by `responses`; git talks to a local HTTP server that records the
credentials it receives (and refuses them, so nothing is transferred)."""

from __future__ import annotations

import base64
import http.server
import logging
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from mergebot.config import ServerConfig
from mergebot.git.mirror import GitError
from mergebot.git.workspace import Workspace, worktrees_root
from mergebot.runtime import build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.conftest import settings_for
from tests.fakegithub import bodies

API = "https://api.github.com"
HOST = "https://api.github.com:443"
REPO = "acme/widgets"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        if auth is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        type(self).seen.append(base64.b64decode(auth.split()[1]).decode())
        self.send_response(403)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def git_server() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{REPO}.git"
    finally:
        server.shutdown()
        server.server_close()


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _expiry(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _askpass_answer(env: dict[str, str], prompt: str) -> str:
    """What git reads from the askpass helper for `prompt`, given the environment it is handed."""
    done = subprocess.run(
        [env["GIT_ASKPASS"], prompt], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


async def test_git_gets_the_current_installation_token_at_every_call(
    tmp_path: Path,
    redis: RedisClient,
    keys: Keys,
    git_server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(
        tmp_path,
        github_app_id=4242,
        github_private_key=SecretStr(_pem()),
        github_api_url=API,
        github_seconds_between_writes=0,
    )
    config = ServerConfig({}, {REPO: {"forge": "github", "remote": git_server}})
    runtime = build_runtime(settings, config, redis, keys)
    mirror = runtime.mirror_for(REPO)
    workspace = Workspace(mirror, worktrees_root(settings.data_dir, REPO), prefix="mergebot/i/")
    tokens = f"{HOST}/app/installations/77/access_tokens"
    with responses.RequestsMock() as http:
        http.get(f"{HOST}/repos/{REPO}/installation", json=bodies.installation(API, 77, "acme"))
        # The first token is about to expire (inside PyGithub's renewal margin); the second is not.
        first = bodies.installation_token("ghs_first", _expiry(timedelta(seconds=10)))
        second = bodies.installation_token("ghs_second", _expiry(timedelta(hours=1)))
        http.post(tokens, json=first, status=201)
        http.post(tokens, json=second, status=201)
        try:
            for _ in range(3):
                with pytest.raises(GitError) as caught:
                    workspace.fetch()
                assert "ghs_" not in str(caught.value)
            env = workspace.mirror.env()
        finally:
            mirror.close()
        minted = [c for c in http.calls if c.request.url == tokens]

    # Each git call got the token current at that moment; a renewed token is minted only once.
    assert _Recorder.seen == [
        "x-access-token:ghs_first",
        "x-access-token:ghs_second",
        "x-access-token:ghs_second",
    ]
    assert len(minted) == 2
    assert _askpass_answer(env, "Username for 'https://github.com': ") == "x-access-token"
    assert _askpass_answer(env, "Password for 'https://github.com': ") == "ghs_second"
    # Never in the remote URL, the mirror's config, or a log line.
    assert mirror.remote_url == git_server
    config_text = (mirror.path / "config").read_text()
    assert "ghs_" not in config_text
    assert git_server in config_text
    assert "ghs_" not in caplog.text


async def test_a_token_that_cannot_be_minted_fails_the_git_call_without_a_secret(
    tmp_path: Path, redis: RedisClient, keys: Keys, git_server: str
) -> None:
    pem = _pem()
    settings = settings_for(
        tmp_path, github_app_id=4242, github_private_key=SecretStr(pem), github_api_url=API
    )
    config = ServerConfig({}, {REPO: {"forge": "github", "remote": git_server}})
    mirror = build_runtime(settings, config, redis, keys).mirror_for(REPO)
    with responses.RequestsMock() as http:
        http.get(f"{HOST}/repos/{REPO}/installation", json={"message": "Not Found"}, status=404)
        try:
            with pytest.raises(GitError, match="credentials for git unavailable") as caught:
                mirror.fetch()
        finally:
            mirror.close()
    assert "PRIVATE KEY" not in str(caught.value)
    assert _Recorder.seen == []  # git never ran without its credentials


async def test_a_configured_token_is_still_used_as_it_is(
    tmp_path: Path, redis: RedisClient, keys: Keys
) -> None:
    settings = settings_for(tmp_path, github_token=SecretStr("ghp_static0000000000"))
    config = ServerConfig({}, {REPO: {"forge": "github"}})
    creds: Any = build_runtime(settings, config, redis, keys).git_credentials(REPO)
    assert (creds.username, creds.current().password.get_secret_value()) == (
        "x-access-token",
        "ghp_static0000000000",
    )
