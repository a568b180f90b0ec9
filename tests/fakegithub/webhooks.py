"""Webhook payloads shaped like GitHub's, and a sender that signs them like GitHub does.

The payload objects reuse the REST shapes of `bodies` (a webhook's `pull_request` is the REST pull
request, its `review` the REST review with a lowercase state, and so on), the way GitHub builds
them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.fakegithub import bodies


def repository(api: str, full_name: str, *, push: bool = False) -> dict[str, Any]:
    body = bodies.repository(api, full_name)
    if push:  # push payloads carry times as Unix seconds
        body = {**body, "pushed_at": 1_795_000_000, "created_at": 1_795_000_000}
    return body


def pull_request(
    api: str, action: str, pull: dict[str, Any], sender: str, **extra: Any
) -> dict[str, Any]:
    full_name = pull["base"]["repo"]["full_name"]
    return {
        "action": action,
        "number": pull["number"],
        "pull_request": pull,
        "repository": repository(api, full_name),
        "sender": bodies.user(api, sender),
        **extra,
    }


def review(
    api: str, action: str, review_body: dict[str, Any], pull: dict[str, Any]
) -> dict[str, Any]:
    full_name = pull["base"]["repo"]["full_name"]
    return {
        "action": action,
        "review": {**review_body, "state": review_body["state"].lower()},
        "pull_request": pull,
        "repository": repository(api, full_name),
        "sender": review_body["user"],
    }


def issue_comment(
    api: str, action: str, comment: dict[str, Any], pull: dict[str, Any]
) -> dict[str, Any]:
    full_name = pull["base"]["repo"]["full_name"]
    number = pull["number"]
    issue_url = f"{api}/repos/{full_name}/issues/{number}"
    issue = {
        "url": issue_url,
        "repository_url": f"{api}/repos/{full_name}",
        "labels_url": f"{issue_url}/labels{{/name}}",
        "comments_url": f"{issue_url}/comments",
        "events_url": f"{issue_url}/events",
        "html_url": pull["html_url"],
        "id": pull["id"],
        "node_id": pull["node_id"],
        "number": number,
        "title": pull["title"],
        "user": pull["user"],
        "labels": [],
        "state": pull["state"],
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": 1,
        "created_at": pull["created_at"],
        "updated_at": pull["updated_at"],
        "closed_at": pull["closed_at"],
        "author_association": "CONTRIBUTOR",
        "body": None,
        "pull_request": {
            "url": pull["url"],
            "html_url": pull["html_url"],
            "diff_url": pull["diff_url"],
            "patch_url": pull["patch_url"],
            "merged_at": pull["merged_at"],
        },
    }
    return {
        "action": action,
        "issue": issue,
        "comment": comment,
        "repository": repository(api, full_name),
        "sender": comment["user"],
    }


def push(
    api: str, full_name: str, ref: str, before: str, after: str, pusher: str
) -> dict[str, Any]:
    zero = "0" * 40
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == zero,
        "deleted": after == zero,
        "forced": False,
        "base_ref": None,
        "compare": f"{api}/repos/{full_name}/compare/{before[:12]}...{after[:12]}",
        "commits": [],
        "head_commit": None,
        "repository": repository(api, full_name, push=True),
        "pusher": {"name": pusher, "email": f"{pusher}@example.com"},
        "sender": bodies.user(api, pusher),
    }


def check_run(api: str, action: str, run: dict[str, Any], full_name: str) -> dict[str, Any]:
    return {
        "action": action,
        "check_run": run,
        "repository": repository(api, full_name),
        "sender": bodies.user(api, "github-actions[bot]", bot=True),
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    event: str
    delivery_id: str
    payload: dict[str, Any]
    status: int | None = None  # None: dropped on purpose, never sent; 0: the receiver was down


@dataclass
class WebhookSender:
    """Posts signed deliveries to mergebot's `POST /webhook`, one at a time, in order.

    `dropping = True` records deliveries without sending them: GitHub losing webhooks."""

    url: str | None
    secret: str
    dropping: bool = False
    deliveries: list[Delivery] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, event: str, payload: dict[str, Any]) -> Delivery:
        delivery = Delivery(event, str(uuid.uuid4()), payload)
        async with self.lock:
            self.deliveries.append(delivery)
            if self.dropping or self.url is None:
                return delivery
            body = json.dumps(payload).encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "GitHub-Hookshot/fake",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery.delivery_id,
                "X-Hub-Signature-256": sign(self.secret, body),
            }
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(self.url, data=body, headers=headers) as response,
                ):
                    delivery.status = response.status
            except (aiohttp.ClientError, OSError):
                delivery.status = 0  # like GitHub: a failed delivery is recorded, not retried
        return delivery

    def sent(self, event: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if d.status is not None and event in (None, d.event)]
