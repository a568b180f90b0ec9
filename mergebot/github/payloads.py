"""The parts of GitHub's webhook payloads mergebot reads, as minimal pydantic models.

Only the fields used are declared (everything else is ignored), so a payload GitHub extends
tomorrow still parses, and a payload missing something we need fails with a precise message
instead of a KeyError deep in translation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    login: str
    type: str = "User"


class Repository(_Model):
    full_name: str


class PushRepository(Repository):
    # A Unix timestamp in push payloads, an ISO string elsewhere.
    pushed_at: int | str | None = None


class Ref(_Model):
    ref: str
    sha: str
    # None when the fork a pull request came from was deleted.
    repo: Repository | None = None


class PullRequest(_Model):
    number: int
    state: str
    draft: bool = False
    merged: bool | None = None
    updated_at: str
    closed_at: str | None = None
    user: User
    head: Ref
    base: Ref


class PullRequestEvent(_Model):
    action: str
    pull_request: PullRequest
    repository: Repository
    sender: User
    changes: dict[str, Any] | None = None
    before: str | None = None  # synchronize: the previous head


class Review(_Model):
    id: int
    user: User
    commit_id: str
    submitted_at: str | None = None
    state: str


class ReviewEvent(_Model):
    action: str
    review: Review
    pull_request: PullRequest
    repository: Repository
    sender: User


class Pusher(_Model):
    name: str


class PushEvent(_Model):
    ref: str
    before: str
    after: str
    created: bool = False
    deleted: bool = False
    forced: bool = False
    pusher: Pusher
    repository: PushRepository
    sender: User | None = None


class Issue(_Model):
    number: int
    # Present (an object of links) only when the issue is a pull request.
    pull_request: dict[str, Any] | None = None


class Comment(_Model):
    id: int
    body: str | None = None
    user: User
    created_at: str
    html_url: str | None = None


class IssueCommentEvent(_Model):
    action: str
    issue: Issue
    comment: Comment
    repository: Repository
    sender: User


class HeadSha(_Model):
    head_sha: str


class CheckRunEvent(_Model):
    action: str
    check_run: HeadSha
    repository: Repository


class CheckSuiteEvent(_Model):
    action: str
    check_suite: HeadSha
    repository: Repository


class StatusEvent(_Model):
    sha: str
    state: str
    context: str
    repository: Repository
