"""Response bodies with the shape GitHub's REST API gives them (modelled on the examples of the
official description); `test_fake_github_schemas` validates each against its schema.

Every function takes `api`, the API root the URLs point at: a fake GitHub writes its own address
there, because PyGithub follows `url` fields and refuses a host other than its base URL.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

WHEN = "2026-11-25T10:00:00Z"


def _id(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _web(api: str) -> str:
    return api.replace("/api/v3", "").replace("api.", "", 1)


def user(api: str, login: str, *, bot: bool = False) -> dict[str, Any]:
    url = f"{api}/users/{login}"
    return {
        "login": login,
        "id": _id(login),
        "node_id": f"U_{_id(login)}",
        "avatar_url": f"{_web(api)}/avatars/{login}",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{_web(api)}/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": "Bot" if bot else "User",
        "site_admin": False,
    }


def private_user(api: str, login: str) -> dict[str, Any]:
    """GET /user for a token's owner."""
    return {
        **user(api, login),
        "name": login,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "public_repos": 1,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": WHEN,
        "updated_at": WHEN,
        "private_gists": 0,
        "total_private_repos": 0,
        "owned_private_repos": 0,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": True,
    }


def repository(api: str, full_name: str, *, default_branch: str = "main") -> dict[str, Any]:
    owner, name = full_name.split("/")
    url = f"{api}/repos/{full_name}"
    templated = {
        "archive_url": "/{archive_format}{/ref}",
        "assignees_url": "/assignees{/user}",
        "blobs_url": "/git/blobs{/sha}",
        "branches_url": "/branches{/branch}",
        "collaborators_url": "/collaborators{/collaborator}",
        "comments_url": "/comments{/number}",
        "commits_url": "/commits{/sha}",
        "compare_url": "/compare/{base}...{head}",
        "contents_url": "/contents/{+path}",
        "contributors_url": "/contributors",
        "deployments_url": "/deployments",
        "downloads_url": "/downloads",
        "events_url": "/events",
        "forks_url": "/forks",
        "git_commits_url": "/git/commits{/sha}",
        "git_refs_url": "/git/refs{/sha}",
        "git_tags_url": "/git/tags{/sha}",
        "hooks_url": "/hooks",
        "issue_comment_url": "/issues/comments{/number}",
        "issue_events_url": "/issues/events{/number}",
        "issues_url": "/issues{/number}",
        "keys_url": "/keys{/key_id}",
        "labels_url": "/labels{/name}",
        "languages_url": "/languages",
        "merges_url": "/merges",
        "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}",
        "pulls_url": "/pulls{/number}",
        "releases_url": "/releases{/id}",
        "stargazers_url": "/stargazers",
        "statuses_url": "/statuses/{sha}",
        "subscribers_url": "/subscribers",
        "subscription_url": "/subscription",
        "tags_url": "/tags",
        "teams_url": "/teams",
        "trees_url": "/git/trees{/sha}",
    }
    web = f"{_web(api)}/{full_name}"
    return {
        "id": _id(full_name),
        "node_id": f"R_{_id(full_name)}",
        "name": name,
        "full_name": full_name,
        "owner": user(api, owner),
        "private": False,
        "html_url": web,
        "description": None,
        "fork": False,
        "url": url,
        **{key: url + suffix for key, suffix in templated.items()},
        "clone_url": f"{web}.git",
        "git_url": f"git:{web.split(':', 1)[1]}.git",
        "ssh_url": f"git@example.com:{full_name}.git",
        "svn_url": web,
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "forks": 0,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "watchers": 0,
        "size": 1,
        "default_branch": default_branch,
        "open_issues": 0,
        "open_issues_count": 0,
        "has_issues": True,
        "has_projects": True,
        "has_wiki": True,
        "has_pages": False,
        "has_downloads": True,
        "archived": False,
        "disabled": False,
        "license": None,
        "pushed_at": WHEN,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def _branch_part(api: str, full_name: str, ref: str, sha: str) -> dict[str, Any]:
    owner = full_name.split("/", maxsplit=1)[0]
    return {
        "label": f"{owner}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user(api, owner),
        "repo": repository(api, full_name),
    }


def pull(
    api: str,
    full_name: str,
    number: int,
    *,
    author: str,
    head_ref: str,
    head_sha: str,
    base_ref: str,
    base_sha: str,
    state: str = "open",
    draft: bool = False,
    merged: bool = False,
    merge_commit_sha: str | None = None,
    title: str = "A change",
    full: bool = True,
) -> dict[str, Any]:
    """A pull request: `full` for GET /pulls/{n}, otherwise the list item shape."""
    url = f"{api}/repos/{full_name}/pulls/{number}"
    issue = f"{api}/repos/{full_name}/issues/{number}"
    web = f"{_web(api)}/{full_name}/pull/{number}"
    body: dict[str, Any] = {
        "url": url,
        "id": _id(f"{full_name}#{number}"),
        "node_id": f"PR_{_id(f'{full_name}#{number}')}",
        "html_url": web,
        "diff_url": f"{web}.diff",
        "patch_url": f"{web}.patch",
        "issue_url": issue,
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{api}/repos/{full_name}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments",
        "statuses_url": f"{api}/repos/{full_name}/statuses/{head_sha}",
        "number": number,
        "state": state,
        "locked": False,
        "title": title,
        "user": user(api, author),
        "body": None,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": WHEN,
        "updated_at": WHEN,
        "closed_at": WHEN if state == "closed" else None,
        "merged_at": WHEN if merged else None,
        "merge_commit_sha": merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _branch_part(api, full_name, head_ref, head_sha),
        "base": _branch_part(api, full_name, base_ref, base_sha),
        "_links": {
            "self": {"href": url},
            "html": {"href": web},
            "issue": {"href": issue},
            "comments": {"href": f"{issue}/comments"},
            "review_comments": {"href": f"{url}/comments"},
            "review_comment": {"href": f"{api}/repos/{full_name}/pulls/comments{{/number}}"},
            "commits": {"href": f"{url}/commits"},
            "statuses": {"href": f"{api}/repos/{full_name}/statuses/{head_sha}"},
        },
        "author_association": "CONTRIBUTOR",
        "auto_merge": None,
        "draft": draft,
    }
    if full:
        body.update(
            {
                "merged": merged,
                "mergeable": None,
                "rebaseable": None,
                "mergeable_state": "unknown",
                "merged_by": None,
                "comments": 0,
                "review_comments": 0,
                "maintainer_can_modify": False,
                "commits": 1,
                "additions": 1,
                "deletions": 0,
                "changed_files": 1,
            }
        )
    return body


def review(
    api: str, full_name: str, number: int, review_id: int, *, login: str, state: str, sha: str
) -> dict[str, Any]:
    pr_url = f"{api}/repos/{full_name}/pulls/{number}"
    web = f"{_web(api)}/{full_name}/pull/{number}"
    return {
        "id": review_id,
        "node_id": f"PRR_{review_id}",
        "user": user(api, login),
        "body": "",
        "state": state,
        "html_url": f"{web}#pullrequestreview-{review_id}",
        "pull_request_url": pr_url,
        "_links": {"html": {"href": f"{web}#pullrequestreview-{review_id}"},
                   "pull_request": {"href": pr_url}},
        "submitted_at": WHEN,
        "commit_id": sha,
        "author_association": "COLLABORATOR",
    }  # fmt: skip


def app(api: str, slug: str = "mergebot", app_id: int = 1) -> dict[str, Any]:
    return {
        "id": app_id,
        "slug": slug,
        "node_id": f"A_{app_id}",
        "client_id": f"Iv1.{app_id:016x}",
        "owner": user(api, "acme"),
        "name": slug,
        "description": "",
        "external_url": "https://example.com",
        "html_url": f"{_web(api)}/apps/{slug}",
        "created_at": WHEN,
        "updated_at": WHEN,
        "permissions": {"checks": "write", "contents": "write", "pull_requests": "write"},
        "events": ["pull_request", "pull_request_review", "push", "issue_comment"],
    }


def check_run(
    api: str,
    full_name: str,
    run_id: int,
    *,
    name: str,
    head_sha: str,
    status: str,
    conclusion: str | None,
    title: str | None = None,
    summary: str | None = None,
    text: str | None = None,
    details_url: str | None = None,
    started_at: str = WHEN,
    completed_at: str | None = None,
    app_slug: str = "github-actions",
    suite_id: int | None = None,
) -> dict[str, Any]:
    """A check run; `suite_id` is its check suite (an Actions workflow run's jobs share one)."""
    url = f"{api}/repos/{full_name}/check-runs/{run_id}"
    return {
        "id": run_id,
        "head_sha": head_sha,
        "node_id": f"CR_{run_id}",
        "external_id": "",
        "url": url,
        "html_url": f"{_web(api)}/{full_name}/runs/{run_id}",
        "details_url": details_url or f"{_web(api)}/{full_name}/runs/{run_id}",
        "status": status,
        "conclusion": conclusion,
        "started_at": started_at,
        "completed_at": completed_at if status == "completed" else None,
        "output": {"title": title, "summary": summary, "text": text, "annotations_count": 0,
                   "annotations_url": f"{url}/annotations"},
        "name": name,
        "check_suite": {"id": suite_id if suite_id is not None else run_id},
        "app": app(api, app_slug),
        "pull_requests": [],
    }  # fmt: skip


def check_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total_count": len(runs), "check_runs": runs}


def status(
    api: str,
    full_name: str,
    status_id: int,
    *,
    context: str,
    state: str,
    description: str | None = None,
    target_url: str | None = None,
    creator: str = "ci-bot",
) -> dict[str, Any]:
    """POST /statuses/{sha} answer; `simple_status` is the combined-status item."""
    return {
        **simple_status(
            api, full_name, status_id, context=context, state=state, description=description,
            target_url=target_url,
        ),
        "creator": user(api, creator),
    }  # fmt: skip


def simple_status(
    api: str,
    full_name: str,
    status_id: int,
    *,
    context: str,
    state: str,
    description: str | None = None,
    target_url: str | None = None,
    at: str = WHEN,
) -> dict[str, Any]:
    return {
        "url": f"{api}/repos/{full_name}/statuses/{status_id}",
        "avatar_url": None,
        "id": status_id,
        "node_id": f"SC_{status_id}",
        "state": state,
        "description": description,
        "target_url": target_url,
        "context": context,
        "created_at": at,
        "updated_at": at,
    }


def combined_status(
    api: str, full_name: str, sha: str, statuses: list[dict[str, Any]]
) -> dict[str, Any]:
    states = {s["state"] for s in statuses}
    overall = (
        "failure" if states & {"failure", "error"} else "pending" if (states - {"success"}) or
        not statuses else "success"
    )  # fmt: skip
    return {
        "state": overall,
        "statuses": statuses,
        "sha": sha,
        "total_count": len(statuses),
        "repository": {
            k: v for k, v in repository(api, full_name).items() if k in _MINIMAL_REPOSITORY
        },
        "commit_url": f"{api}/repos/{full_name}/commits/{sha}",
        "url": f"{api}/repos/{full_name}/commits/{sha}/status",
    }


_MINIMAL_REPOSITORY = frozenset(
    [
        "id",
        "node_id",
        "name",
        "full_name",
        "owner",
        "private",
        "html_url",
        "description",
        "fork",
        "url",
        "archive_url",
        "assignees_url",
        "blobs_url",
        "branches_url",
        "collaborators_url",
        "comments_url",
        "commits_url",
        "compare_url",
        "contents_url",
        "contributors_url",
        "deployments_url",
        "downloads_url",
        "events_url",
        "forks_url",
        "git_commits_url",
        "git_refs_url",
        "git_tags_url",
        "hooks_url",
        "issue_comment_url",
        "issue_events_url",
        "issues_url",
        "keys_url",
        "labels_url",
        "languages_url",
        "merges_url",
        "milestones_url",
        "notifications_url",
        "pulls_url",
        "releases_url",
        "stargazers_url",
        "statuses_url",
        "subscribers_url",
        "subscription_url",
        "tags_url",
        "teams_url",
        "trees_url",
    ]
)


def issue_comment(
    api: str, full_name: str, number: int, comment_id: int, *, login: str, body: str,
    bot: bool = False,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": comment_id,
        "node_id": f"IC_{comment_id}",
        "url": f"{api}/repos/{full_name}/issues/comments/{comment_id}",
        "html_url": f"{_web(api)}/{full_name}/pull/{number}#issuecomment-{comment_id}",
        "body": body,
        "user": user(api, login, bot=bot),
        "created_at": WHEN,
        "updated_at": WHEN,
        "issue_url": f"{api}/repos/{full_name}/issues/{number}",
        "author_association": "NONE" if bot else "COLLABORATOR",
    }


def permission(api: str, login: str, level: str) -> dict[str, Any]:
    role = {"admin": "admin", "maintain": "maintain", "write": "write", "triage": "triage",
            "read": "read"}.get(level, "none")  # fmt: skip
    return {
        "permission": level,
        "role_name": role,
        "user": {**user(api, login), "role_name": role},
    }


def git_ref(api: str, full_name: str, ref: str, sha: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "node_id": f"REF_{_id(full_name + ref)}",
        "url": f"{api}/repos/{full_name}/git/{ref}",
        "object": {
            "type": "commit",
            "sha": sha,
            "url": f"{api}/repos/{full_name}/git/commits/{sha}",
        },
    }


def content_file(api: str, full_name: str, path: str, ref: str, text: bytes) -> dict[str, Any]:
    sha = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    url = f"{api}/repos/{full_name}/contents/{path}?ref={ref}"
    web = f"{_web(api)}/{full_name}/blob/{ref}/{path}"
    git_url = f"{api}/repos/{full_name}/git/blobs/{sha}"
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(text),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": base64.b64encode(text).decode() + "\n",
        "sha": sha,
        "url": url,
        "git_url": git_url,
        "html_url": web,
        "download_url": f"{_web(api)}/raw/{full_name}/{ref}/{path}",
        "_links": {"git": git_url, "self": url, "html": web},
    }


def commit(
    api: str, full_name: str, sha: str, *, parents: list[str], message: str = "change",
    tree: str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
) -> dict[str, Any]:  # fmt: skip
    url = f"{api}/repos/{full_name}/commits/{sha}"
    person = {"name": "Test Author", "email": "author@example.com", "date": WHEN}
    return {
        "url": url,
        "sha": sha,
        "node_id": f"C_{sha[:12]}",
        "html_url": f"{_web(api)}/{full_name}/commit/{sha}",
        "comments_url": f"{url}/comments",
        "commit": {
            "url": f"{api}/repos/{full_name}/git/commits/{sha}",
            "author": person,
            "committer": person,
            "message": message,
            "comment_count": 0,
            "tree": {"sha": tree, "url": f"{api}/repos/{full_name}/git/trees/{tree}"},
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/repos/{full_name}/commits/{p}",
             "html_url": f"{_web(api)}/{full_name}/commit/{p}"}
            for p in parents
        ],
    }  # fmt: skip


def comparison(
    api: str, full_name: str, base: dict[str, Any], merge_base: dict[str, Any], *,
    status: str, ahead_by: int, behind_by: int, commits: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    spec = f"{base['sha']}...{commits[-1]['sha'] if commits else base['sha']}"
    return {
        "url": f"{api}/repos/{full_name}/compare/{spec}",
        "html_url": f"{_web(api)}/{full_name}/compare/{spec}",
        "permalink_url": f"{_web(api)}/{full_name}/compare/{spec}",
        "diff_url": f"{_web(api)}/{full_name}/compare/{spec}.diff",
        "patch_url": f"{_web(api)}/{full_name}/compare/{spec}.patch",
        "base_commit": base,
        "merge_base_commit": merge_base,
        "status": status,
        "ahead_by": ahead_by,
        "behind_by": behind_by,
        "total_commits": len(commits),
        "commits": commits,
        "files": [],
    }


def installation(api: str, installation_id: int, account: str) -> dict[str, Any]:
    return {
        "id": installation_id,
        "account": user(api, account),
        "repository_selection": "selected",
        "access_tokens_url": f"{api}/app/installations/{installation_id}/access_tokens",
        "repositories_url": f"{api}/installation/repositories",
        "html_url": f"{_web(api)}/settings/installations/{installation_id}",
        "app_id": 1,
        "app_slug": "mergebot",
        "target_id": _id(account),
        "target_type": "Organization",
        "permissions": {"checks": "write", "contents": "write", "pull_requests": "write"},
        "events": ["pull_request", "push"],
        "single_file_name": None,
        "created_at": WHEN,
        "updated_at": WHEN,
        "suspended_by": None,
        "suspended_at": None,
    }


def installation_token(token: str, expires_at: str) -> dict[str, Any]:
    return {
        "token": token,
        "expires_at": expires_at,
        "permissions": {"checks": "write", "contents": "write", "pull_requests": "write"},
        "repository_selection": "selected",
    }


def error(
    message: str, doc: str = "https://docs.github.com/rest", status: str = "error"
) -> dict[str, Any]:
    """GitHub's error body (`basic-error`); GitHub's own put the HTTP status in `status`."""
    return {"message": message, "documentation_url": doc, "status": status}
