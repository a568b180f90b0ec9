"""Credentials for https remotes, handed to git without ever entering a URL, a log or an error.

git asks `GIT_ASKPASS` for a username and a password when a remote needs them. mergebot points it at
a tiny script that prints two environment variables, and sets those variables only in the
environment of the git child process. So the secret is never written to disk, never part of a
command line (visible in `ps`) and never part of the remote URL stored in the mirror's config.
When no credentials are configured, git's own credential helpers (the operator's git config) apply.

A GitHub App has no long-lived secret for git: its installation token expires after an hour. A
`TokenSource` therefore asks for the current token at every git call (`current()`), so a fetch or
push never runs with a token minted for an earlier call.

Every message built from git's output goes through `redact`, which removes URL user info and any
known secret value, in case a remote URL was configured with a token in it anyway.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

_USER_VAR = "MERGEBOT_ASKPASS_USERNAME"
_PASS_VAR = "MERGEBOT_ASKPASS_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
_ASKPASS_SCRIPT = f"""#!/bin/sh
# Written by mergebot: answers git's credential prompts from the environment of this git call.
case "$1" in
  Username*|username*) printf '%s\\n' "${_USER_VAR}" ;;
  *) printf '%s\\n' "${_PASS_VAR}" ;;
esac
"""
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class GitCredentials:
    """A username and password (or token) for https remotes."""

    username: str
    password: SecretStr

    def secrets(self) -> list[str]:
        return [self.password.get_secret_value()]

    def current(self) -> GitCredentials:
        return self


@dataclass(frozen=True)
class TokenSource:
    """Credentials whose password is fetched anew for each git call (a token that expires).

    `fetch` blocks (it may mint a token over HTTP); git calls run in threads, so that is fine."""

    username: str
    fetch: Callable[[], str] = field(repr=False)

    def current(self) -> GitCredentials:
        return GitCredentials(self.username, SecretStr(self.fetch()))


CredentialSource = GitCredentials | TokenSource


def askpass_script(directory: Path) -> Path:
    """The askpass helper under `directory` (written once, owner-only permissions)."""
    path = directory / "git-askpass.sh"
    if not path.exists() or path.read_text() != _ASKPASS_SCRIPT:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_ASKPASS_SCRIPT)
        tmp.chmod(stat.S_IRWXU)
        tmp.replace(path)
    return path


def credential_env(credentials: GitCredentials | None, directory: Path) -> dict[str, str]:
    """Environment entries that let git authenticate with `credentials` (empty without them)."""
    if credentials is None:
        return {}
    return {
        "GIT_ASKPASS": str(askpass_script(directory)),
        _USER_VAR: credentials.username,
        _PASS_VAR: credentials.password.get_secret_value(),
    }


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without URL user info (`https://user:token@host` → `https://***@host`) and without
    any of `secrets`."""
    out = _USERINFO.sub(r"\g<scheme>***@", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out
