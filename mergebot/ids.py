"""Identifier types and their syntax, shared by every layer.

The patterns live here (not in each model) so that the webhook translation, the canonical API and
the git adapter agree on what a valid repo, slug, branch or sha is.
"""

from __future__ import annotations

import re
from typing import NewType

# The identifiers that travel furthest: typed where they are parsed, so a repo is never passed
# where a slug is expected. (A NewType is its str at run time: nothing is converted.)
Repo = NewType("Repo", str)  # owner/name
Slug = NewType("Slug", str)  # a candidate's name within its repo (a pull request is pr-<n>)
Branch = NewType("Branch", str)
Sha = NewType("Sha", str)  # a full 40-hex commit id
ItemId = NewType("ItemId", str)  # a queue item: <slug>:<sha>:<branch>
FollowupId = NewType("FollowupId", str)  # <slug>-integration-blocked-<sha7>[-n]

REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
SHA_PATTERN = r"^[0-9a-f]{40}$"

_REPO_RE = re.compile(REPO_PATTERN)
_SLUG_RE = re.compile(SLUG_PATTERN)
_SHA_RE = re.compile(SHA_PATTERN)
# A pull request's candidate is the slug `pr-<number>` (the GitHub translation names it so).
_SLUG_PR = re.compile(r"^pr-([1-9][0-9]{0,9})$")
# git check-ref-format rules that matter for untrusted input; see git-check-ref-format(1).
_BAD_REF_RE = re.compile(r"(\.\.|@\{|//|\\|[\x00-\x20\x7f~^:?*\[])")


def branch_problem(name: str) -> str | None:
    """Why `name` is not a branch name git would accept, or None when it is fine.

    Branch names come from webhooks and producers and later reach git command lines, so they are
    checked once at the edge instead of being quoted defensively everywhere.
    """
    if not name:
        return "branch name is empty"
    if len(name) > 255:
        return "branch name is longer than 255 characters"
    if name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return "branch name starts with '-' or '/' or ends with '/', '.' or '.lock'"
    if name == "@" or _BAD_REF_RE.search(name):
        return "branch name contains a character or sequence git refuses (space, '..', '~', ':' …)"
    if name.startswith(".") or "/." in name:
        return "a branch name component starts with '.'"
    return None


def is_repo(value: str) -> bool:
    return bool(_REPO_RE.match(value))


def is_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


def is_sha(value: str) -> bool:
    return bool(_SHA_RE.match(value))


def pr_number(slug: str) -> int | None:
    """The pull request number of a GitHub slug (`pr-<n>`); None for other producers' slugs."""
    match = _SLUG_PR.match(slug)
    return int(match.group(1)) if match else None
