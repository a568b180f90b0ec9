"""A check command cannot read the server's secrets (SPEC §11): a candidate whose check hunts for
four distinctive secrets — in its environment, in every `/proc/<pid>/environ`, `cmdline` and
memory it can open, in the data dir and in the secret files — finds none of them.

It runs against a real `mergebot serve` with its embedded Redis, in the configurations mergebot
supports: a root server handing checks to another user (with and without bubblewrap), and an
unprivileged server (the Docker image's configuration: secrets in the environment; and with
bubblewrap, secrets as `_FILE`s too).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.gitutil import GitRemote
from tests.integrationkit import REPO, candidate_events, make_candidate, server_toml
from tests.waiting import until_sync, wait_healthy

REPO_ROOT = Path(__file__).resolve().parents[2]
HUNTER = REPO_ROOT / "tests" / "fixtures" / "secret_hunter.py"
pytestmark = pytest.mark.slow

NOBODY = pwd.getpwnam("nobody")
IS_ROOT = os.geteuid() == 0


def _secrets() -> dict[str, str]:
    tag = secrets.token_hex(6)
    return {
        "api_token": f"apitok-{tag}-{secrets.token_hex(12)}",
        "webhook_secret": f"hooksec-{tag}-{secrets.token_hex(12)}",
        "github_token": f"ghp_{tag}{secrets.token_hex(14)}",
        "git_password": f"gitpw-{tag}-{secrets.token_hex(12)}",
    }


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for base, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.lchown(Path(base) / name, uid, gid)
    os.chown(root, uid, gid)


def _as_nobody(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """`argv` and Popen options for a server run as nobody. When this interpreter lives where
    nobody cannot go (a home directory of mode 0700), a bubblewrap shim (started as root) shows
    just that interpreter's tree: an empty directory over the closed one, the interpreter bound
    back read-only, all else — /proc included — the host's; then `setpriv` becomes nobody."""
    drop = {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": []}
    try:
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True, **drop)
    except (OSError, subprocess.CalledProcessError):
        pass
    else:
        return argv, drop
    prefix = Path(sys.base_prefix).resolve()
    closed = next(p for p in reversed(prefix.parents) if not os.stat(p).st_mode & 0o001)
    shown = closed / prefix.relative_to(closed).parts[0]
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    assert bwrap, "bubblewrap is needed to run this python as nobody"
    assert setpriv, "setpriv is needed to run this python as nobody"
    return [
        bwrap, "--die-with-parent",
        "--bind", "/", "/", "--dev-bind", "/dev", "/dev", "--bind", "/proc", "/proc",
        "--perms", "0755", "--tmpfs", str(closed), "--ro-bind", str(shown), str(shown),
        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
        setpriv, f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--", *argv,
    ], {}  # fmt: skip


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group, then wait until no process of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    try:
        until_sync(lambda: _group_gone(server.pid), "the server's process group to exit",
                   timeout=30, interval=0.1)  # fmt: skip
    except AssertionError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        raise


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _post(url: str, token: str, body: Any) -> None:
    request = urllib.request.Request(
        url + "/events", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 201


def _candidate_state(url: str) -> dict[str, Any] | None:
    api = f"{url}/api/repos/{REPO}/queue"
    with urllib.request.urlopen(api, timeout=10) as resp:
        queue = json.loads(resp.read())
    for cand in queue["candidates"]:
        if cand["slug"] == "pr-1" and cand["status"] in ("integrated", "blocked"):
            return dict(cand)
    return None


CASES = {
    # name: (server runs as root, MERGEBOT_CHECK_SANDBOX, secrets given as files)
    "root-hands-checks-to-nobody-in-bwrap": (True, "bwrap", True),
    "root-hands-checks-to-nobody": (True, "none", True),
    "unprivileged-server-docker-default": (False, "none", False),
    "unprivileged-server-in-bwrap": (False, "bwrap", True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_check_hunting_for_the_servers_secrets_finds_none(open_dir: Path, case: str) -> None:
    world = open_dir
    as_root, sandbox, as_files = CASES[case]
    if not IS_ROOT:
        pytest.fail("this test starts servers as root and as nobody: run the suite as root")
    if sandbox == "bwrap" and shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (Debian package bubblewrap)")
    values = _secrets()
    remote = GitRemote(world / "git")
    hunted = json.dumps({k: v.encode().hex() for k, v in values.items()})
    cand = make_candidate(remote, "pr-1", "hunted.json", hunted)
    remote.checkout("feature/pr-1", "feature/pr-1", create=False)
    remote.commit("secret_hunter.py", HUNTER.read_text(), "add the hunter")
    cand = type(cand)(cand.slug, cand.branch, remote.push("feature/pr-1"))
    data_dir = world / "data"
    secret_dir = world / "secrets"
    secret_dir.mkdir()
    config = world / "mergebot.toml"
    # The system's python: the check user may not reach the interpreter running the tests.
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"
    command = f"{python} secret_hunter.py {data_dir} {secret_dir}"
    config.write_text(server_toml(remote, checks={"commands": [command]}))

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT), MERGEBOT_DATA_DIR=str(data_dir), MERGEBOT_PORT=str(port),
        MERGEBOT_CONFIG=str(config), MERGEBOT_CHECK_SANDBOX=sandbox,
        MERGEBOT_API_TOKEN=values["api_token"], MERGEBOT_WEBHOOK_SECRET=values["webhook_secret"],
    )  # fmt: skip
    for name in ("github_token", "git_password"):
        if as_files:
            path = secret_dir / name
            path.write_text(values[name] + "\n")
            path.chmod(0o400)
            env[f"MERGEBOT_{name.upper()}_FILE"] = str(path)
        else:
            env[f"MERGEBOT_{name.upper()}"] = values[name]
    options: dict[str, Any] = {}
    argv = [sys.executable, "-m", "mergebot", "serve"]
    if not as_root:
        _chown_tree(world, NOBODY.pw_uid, NOBODY.pw_gid)
        argv, options = _as_nobody(argv)
        # The remote was made by root: let the nobody-owned server's git use it.
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory", GIT_CONFIG_VALUE_0="*")
    log_path = world / "serve.log"
    with log_path.open("wb") as log:
        # Its own process group: the server may sit behind bubblewrap and setpriv, and stopping
        # only the first process would leave the server (and its Redis) running as nobody.
        server = subprocess.Popen(
            argv, cwd=world, env=env, start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT, **options,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(url, server)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
        _post(url, values["api_token"], candidate_events(cand, 0))

        def finished() -> bool:
            assert server.poll() is None, log_path.read_text()[-3000:]
            return _candidate_state(url) is not None

        until_sync(finished, "the candidate to finish", timeout=120, interval=0.2,
                   context=lambda: log_path.read_text()[-3000:])  # fmt: skip
        state = _candidate_state(url)  # integrated and blocked are final: the same answer again
        assert state is not None
    finally:
        _stop_group(server)
    text = log_path.read_text()
    how = "user nobody" if as_root else "the server's user"
    how += ", bubblewrap" if sandbox == "bwrap" else ", no sandbox"
    assert f"checks_isolated how={how}" in text
    assert state["status"] == "integrated", json.dumps(state, indent=1)
    for value in values.values():
        assert value not in text
