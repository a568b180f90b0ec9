"""GitHub test material: the real example payloads, the variants derived from them, webhook
signing, and a fake Forge that records what it was asked."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mergebot.forge.base import CheckResult, CommentKind, Permission, Report, RerunAnswer
from mergebot.github.signature import sign

FIXTURES = Path(__file__).parent / "fixtures" / "github"
REPO = "Codertocat/Hello-World"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SECRET = "test-webhook-secret"
# The base branch of the example repository; tests configure it as the managed base.
BASE = "master"
SERVER_TOML = f'[repos."{REPO}"]\nbase_branch = "{BASE}"\n'


@cache
def _raw(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def load(name: str) -> dict[str, Any]:
    """A fresh copy of a real example payload (tests may change it freely)."""
    payload: dict[str, Any] = json.loads(_raw(name))
    return payload


# -- variants derived from the real payloads (see fixtures/github/README.md) -----------------------
def review(state: str) -> dict[str, Any]:
    payload = load("pull_request_review.submitted")
    payload["review"]["state"] = state
    return payload


def pr_comment(
    body: str,
    *,
    comment_id: int = 492700400,
    created_at: str = "2019-05-15T15:25:00Z",
    action: str = "created",
    login: str = "Codertocat",
    user_type: str = "User",
) -> dict[str, Any]:
    payload = load("issue_comment.edited" if action == "edited" else "issue_comment.created")
    payload["action"] = action
    issue = payload["issue"]
    issue["number"] = 2
    issue["pull_request"] = {
        "url": f"https://api.github.com/repos/{REPO}/pulls/2",
        "html_url": f"https://github.com/{REPO}/pull/2",
        "diff_url": f"https://github.com/{REPO}/pull/2.diff",
        "patch_url": f"https://github.com/{REPO}/pull/2.patch",
        "merged_at": None,
    }
    comment = payload["comment"]
    comment["body"] = body
    comment["id"] = comment_id
    comment["created_at"] = comment["updated_at"] = created_at
    comment["html_url"] = f"https://github.com/{REPO}/pull/2#issuecomment-{comment_id}"
    comment["user"]["login"] = login
    comment["user"]["type"] = user_type
    return payload


def base_changed(from_ref: str, to_ref: str) -> dict[str, Any]:
    payload = load("pull_request.opened")
    payload["action"] = "edited"
    payload["changes"] = {"base": {"ref": {"from": from_ref}, "sha": {"from": "f" * 40}}}
    payload["pull_request"]["base"]["ref"] = to_ref
    return payload


def fork_opened() -> dict[str, Any]:
    payload = load("pull_request.opened")
    head = payload["pull_request"]["head"]
    head["label"] = "octo-fork:changes"
    head["repo"] = copy.deepcopy(head["repo"])
    head["repo"]["full_name"] = "octo-fork/Hello-World"
    head["repo"]["fork"] = True
    return payload


def draft_opened() -> dict[str, Any]:
    payload = load("pull_request.opened")
    payload["pull_request"]["draft"] = True
    return payload


def feature_push() -> dict[str, Any]:
    payload = load("push.branch_created")
    payload["ref"] = "refs/heads/changes"
    payload["created"] = False
    payload["before"] = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    return payload


def feature_deleted() -> dict[str, Any]:
    payload = load("push.tag_deleted")
    payload["ref"] = "refs/heads/changes"
    return payload


# -- webhooks ----------------------------------------------------------------------------------
def signed_headers(event: str, body: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret.encode(), body),
        "Content-Type": "application/json",
    }


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# -- a fake forge ------------------------------------------------------------------------------
@dataclass
class FakeForge:
    """Answers permission lookups from a table and records comments; fails on demand."""

    permissions: dict[str, Permission] = field(default_factory=dict)
    comments: list[tuple[str, str, CommentKind, str]] = field(default_factory=list)
    permission_calls: list[tuple[str, str]] = field(default_factory=list)
    failures: int = 0  # the next n permission lookups raise

    async def permission(self, repo: str, user: str) -> Permission:
        self.permission_calls.append((repo, user))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("forge unreachable")
        return self.permissions.get(user, Permission.NONE)

    async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
        return []

    async def rerun_checks(self, repo: str, sha: str, names: list[str]) -> RerunAnswer:
        return RerunAnswer()

    async def recent_check_names(self, repo: str, branch_prefix: str, days: int) -> set[str]:
        return set()

    async def read_file(self, repo: str, ref: str, path: str) -> str | None:
        return None

    async def report(self, report: Report) -> None:
        return None

    async def comment(self, repo: str, slug: str, kind: CommentKind, body: str) -> None:
        self.comments.append((repo, slug, kind, body))

    async def landed(self, repo: str, slug: str, sha: str, merged_sha: str) -> None:
        return None
