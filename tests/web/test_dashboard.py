"""The queue dashboard on real Redis: what a person sees at `/` and `/repos/<owner>/<repo>`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.attempts import Attempt, AttemptStore
from mergebot.config import ServerConfig
from mergebot.cutover import Evidence
from mergebot.cutover_facts import EvidenceStore
from mergebot.followups import Followup, claim
from mergebot.main import create_app
from mergebot.queue import IntegrationRecord, QueueItem, Status, item_id
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import connect
from mergebot.store.followups import FollowupStore
from mergebot.store.lease import Lease
from mergebot.store.queue import QueueStore
from tests.brainkit import emit, manage, process, queue_items
from tests.conftest import API_TOKEN, free_port, settings_for
from tests.factories import REPO, SHA_A, SHA_B
from tests.unit.test_readiness import approve, at, finalize, push, raw_event

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

SHA_C = "c" * 40
SHA_D = "d" * 40
HOSTILE_BRANCH = "feature/<script>alert(1)</script>"
HOSTILE_SLUG = '<img src=x onerror="alert(2)">'


class Text(HTMLParser):
    """The visible text of a page, and every element's attributes (to find links and ids)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.scripts = 0
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.append((tag, dict(attrs)))
        self.scripts += tag == "script"
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())

    def links(self) -> list[str]:
        return [a["href"] or "" for tag, a in self.attrs if tag == "a" and "href" in a]

    def ids(self) -> list[str]:
        return [a["id"] or "" for _, a in self.attrs if "id" in a]


async def scenario(runtime: Runtime) -> None:
    """pr-1 then pr-2 queued (pr-1 ready first), pr-3 waiting for its push to origin."""
    manage(runtime)
    await emit(
        runtime,
        approve(), finalize(), push(),
        approve(sha=SHA_B, slug="pr-2"), finalize(SHA_B, 4, "feature/two", slug="pr-2"),
        push(SHA_B, 3, "feature/two"),
        approve(sha=SHA_C, slug="pr-3"), finalize(SHA_C, 5, "feature/three", slug="pr-3"),
    )  # fmt: skip
    await process(runtime)


@pytest.fixture
async def client(aiohttp_client: MakeClient, runtime: Runtime) -> Client:
    return await aiohttp_client(create_app(runtime))


async def page(client: Client, path: str, status: int = 200) -> Text:
    resp = await client.get(path)
    body = await resp.text()
    assert resp.status == status, body
    assert resp.content_type == "text/html"
    return Text(body)


def section(text: str, title: str) -> str:
    """The text of the page from a section heading to the next one."""
    after = text.split(title, 1)[1]
    headings = ("Integrating now", "Queue (", "Blocked (", "Waiting, not ready", "Recently fin")
    ends = [after.find(h) for h in headings if after.find(h) > 0]
    return after[: min(ends)] if ends else after


async def test_repo_page_lists_the_queue_in_fifo_order_with_positions(
    client: Client, runtime: Runtime
) -> None:
    await scenario(runtime)
    shown = await page(client, f"/repos/{REPO}")
    queue = section(shown.text, "Queue (")
    assert re.search(r"#1 pr-1 queued feature/one aaaaaaa", queue), queue
    assert re.search(r"#2 pr-2 queued feature/two bbbbbbb", queue), queue
    assert queue.index("pr-1") < queue.index("pr-2")
    assert "pr-3" not in queue
    assert "refresh" in [a.get("http-equiv") for tag, a in shown.attrs if tag == "meta"]
    assert f"/api/repos/{REPO}/queue" in shown.links()
    assert shown.scripts == 0
    # Notifications link to /repos/<repo>#<slug>: every candidate has its anchor.
    assert {"pr-1", "pr-2", "pr-3"} <= set(shown.ids())


async def test_waiting_candidates_show_what_is_missing(client: Client, runtime: Runtime) -> None:
    await scenario(runtime)
    waiting = section((await page(client, f"/repos/{REPO}")).text, "Waiting, not ready")
    assert "pr-3 waiting feature/three ccccccc" in waiting
    assert "no branch_pushed of ccccccc to origin/feature/three" in waiting


async def test_current_integration_shows_its_checks_and_blocked_its_followup(
    client: Client, runtime: Runtime
) -> None:
    await scenario(runtime)
    first, second = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", first.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", first.id, Status.BLOCKED, cause="conflict",
        followup_id="pr-1-integration-blocked-aaaaaaa", reasons=["merge conflict in a.txt"],
    )  # fmt: skip
    await store.transition(REPO, "main", second.id, Status.IN_PROGRESS, cause="picked")
    checks = [
        {"name": "unit tests", "kind": "command", "state": "passed", "seconds": 12.5},
        {"name": "lint", "kind": "required", "state": "pending", "url": "https://ci.example/9"},
        {"name": "evil", "kind": "required", "state": "failed", "url": "javascript:alert(3)"},
    ]
    attempt = Attempt(
        item_id=second.id, attempt=2, base_sha=SHA_D, commit="e" * 40,
        branch="mergebot/integration/pr-2", checks=checks,
    )  # fmt: skip
    await AttemptStore(runtime.redis, runtime.keys).put(REPO, "main", attempt)
    lease = Lease(runtime.redis, runtime.keys, REPO, "main", "integrator-7")
    assert await lease.acquire()

    shown = await page(client, f"/repos/{REPO}")
    current = section(shown.text, "Integrating now")
    assert "pr-2 in progress feature/two bbbbbbb" in current
    assert "attempt 2 on main ddddddd integration commit eeeeeee" in current
    assert "unit tests command passed 12.5s" in current
    assert "lint required pending" in current
    assert "https://ci.example/9" in shown.links()
    assert not [link for link in shown.links() if link.startswith("javascript")]
    blocked = section(shown.text, "Blocked (")
    assert "pr-1 blocked" in blocked
    assert "merge conflict in a.txt" in blocked
    assert "follow-up pr-1-integration-blocked-aaaaaaa" in blocked
    assert "followup-pr-1-integration-blocked-aaaaaaa" in shown.ids()
    assert "integrator-7 holds the lease" in shown.text
    assert "Queue (0," in shown.text


async def test_blocked_candidate_shows_its_stored_followup_chain(
    client: Client, runtime: Runtime
) -> None:
    await scenario(runtime)
    first, _ = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    followups = FollowupStore(runtime.redis, runtime.keys)
    now = datetime.now(UTC)
    for number, fid in enumerate(
        ("pr-1-integration-blocked-aaaaaaa", "pr-1-integration-blocked-aaaaaaa-2")
    ):
        await store.transition(REPO, "main", first.id, Status.IN_PROGRESS, cause="picked")
        await store.transition(
            REPO, "main", first.id, Status.BLOCKED, cause="checks failed", followup_id=fid,
            reasons=["checks failed: unit"],
        )  # fmt: skip
        details = {
            "checks": [{"name": "unit", "state": "failed", "url": "https://ci.example/7",
                        "output_tail": "FAILED test_login - assert 2 == 3"}],
        } if number else {"files": [f"src/f{i}.py" for i in range(8)]}  # fmt: skip
        followup = Followup(
            id=fid, repo=REPO, slug="pr-1", branch="feature/one", sha=SHA_A,
            reason="checks_failed" if number else "merge_conflict", details=details,
            blocked_at=now, event_id=f"e{number}", created_at=now, updated_at=now,
        )  # fmt: skip
        await followups.create(followup)
        if number == 0:
            await store.transition(REPO, "main", first.id, Status.QUEUED, cause="resumed")
    await followups.update(
        REPO, "pr-1-integration-blocked-aaaaaaa-2", lambda f: claim(f, "bob", now)
    )

    shown = await page(client, f"/repos/{REPO}")
    blocked = section(shown.text, "Blocked (")
    assert "follow-up pr-1-integration-blocked-aaaaaaa-2 claimed: bob" in blocked
    assert "checks failed" in blocked
    assert "check unit : failed FAILED test_login - assert 2 == 3" in blocked  # link, then text
    assert "after pr-1-integration-blocked-aaaaaaa" in blocked
    assert f"mergebot resume {REPO} pr-1" in blocked
    assert "https://ci.example/7" in shown.links()
    # Follow-ups link to their pages (HTML), and the list page lists the chain.
    assert f"/repos/{REPO}/followups/pr-1-integration-blocked-aaaaaaa" in shown.links()
    assert f"/repos/{REPO}/followups/pr-1-integration-blocked-aaaaaaa-2" in shown.links()
    assert f"/repos/{REPO}/followups" in shown.links()
    listed = await page(client, f"/repos/{REPO}/followups")
    assert listed.text.index("pr-1-integration-blocked-aaaaaaa open") < (
        listed.text.index("pr-1-integration-blocked-aaaaaaa-2 claimed: bob")
    )  # open ones first, then claimed, then resolved
    # The plain-remote repo gets the CLI hint only (no pull request to comment on).
    assert "comment /mergebot resume" not in blocked


async def test_recently_integrated_shows_where_base_went(client: Client, runtime: Runtime) -> None:
    await scenario(runtime)
    first, _ = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", first.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", first.id, Status.INTEGRATED, cause="main fast-forwarded",
        integration=IntegrationRecord(main_after="f" * 40, mode="live"),
    )  # fmt: skip
    recent = section((await page(client, f"/repos/{REPO}")).text, "Recently finished")
    assert "pr-1 integrated" in recent
    assert "moved main to fffffff" in recent


async def test_a_shadow_decision_says_would_integrate(client: Client, runtime: Runtime) -> None:
    await scenario(runtime)
    first, _ = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", first.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", first.id, Status.INTEGRATED, cause="shadow: would integrate fffffff",
        integration=IntegrationRecord(
            main_after="f" * 40, mode="shadow", would_integrate="f" * 40
        ),
    )  # fmt: skip
    recent = section((await page(client, f"/repos/{REPO}")).text, "Recently finished")
    assert "pr-1 would integrate" in recent
    assert "pr-1 integrated" not in recent
    assert "would have moved main to fffffff" in recent


async def test_hostile_branch_and_slug_are_escaped(client: Client, runtime: Runtime) -> None:
    manage(runtime)
    await emit(
        runtime,
        approve(sha=SHA_A), finalize(SHA_A, 2, HOSTILE_BRANCH), push(SHA_A, 1, HOSTILE_BRANCH),
    )  # fmt: skip
    await process(runtime)
    now = datetime.now(UTC)
    smuggled = QueueItem(
        id=item_id(HOSTILE_SLUG, "x", SHA_B), repo=REPO, base="main", slug=HOSTILE_SLUG,
        branch="x", sha=SHA_B, status=Status.QUEUED, ready_at=now, updated_at=now,
    )  # fmt: skip
    assert await QueueStore(runtime.redis, runtime.keys).enqueue(smuggled)

    resp = await client.get(f"/repos/{REPO}")
    body = await resp.text()
    assert resp.status == 200
    assert "<script>" not in body
    assert "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    shown = Text(body)
    assert shown.scripts == 0
    assert HOSTILE_BRANCH in shown.text  # shown as text, not run
    assert HOSTILE_SLUG in shown.text
    assert not [a for _, a in shown.attrs if "onerror" in a]
    index = await client.get("/")
    assert "<script>" not in await index.text()


async def test_index_lists_every_repo_with_counts_and_lease(
    client: Client, runtime: Runtime
) -> None:
    await scenario(runtime)
    runtime.server_config = ServerConfig(
        {}, {REPO: {}, "acme/gadgets": {"mode": "shadow", "base_branch": "trunk"}}
    )
    lease = Lease(runtime.redis, runtime.keys, REPO, "main", "integrator-7")
    assert await lease.acquire()
    shown = await page(client, "/")
    text = shown.text
    assert text.index("acme/gadgets") < text.index(REPO)
    assert f"{REPO} main live 2 queued 0 integrating 1 waiting 0 blocked" in text
    assert "lease: integrator-7" in text
    assert "next: pr-1" in text
    assert "acme/gadgets trunk shadow 0 queued" in text
    assert "lease: free" in text
    assert f"/repos/{REPO}" in shown.links()
    assert "/repos/acme/gadgets" in shown.links()


async def test_index_without_repos_says_how_to_add_one(client: Client) -> None:
    assert "No repos yet" in (await page(client, "/")).text


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/repos/nobody/nothing", "nobody/nothing is not managed by this mergebot"),
        ("/repos/bad%20owner/x", "is not a repo name"),
        ("/repos/-x/y", "is not a repo name"),
        ("/repos/%3Cscript%3Ealert(1)%3C%2Fscript%3E/x", "<script>alert(1)</script>/x"),
    ],
)
async def test_unknown_or_invalid_repo_is_a_clear_404(
    client: Client, path: str, message: str
) -> None:
    shown = await page(client, path, status=404)
    assert "No such repo" in shown.text
    assert message in shown.text  # as text: never markup
    assert shown.scripts == 0


async def test_no_token_or_secret_ever_appears(
    aiohttp_client: MakeClient, runtime: Runtime, tmp_path: Path
) -> None:
    secrets = {
        "webhook_secret": "whsec-0123456789abcdef",
        "github_token": "ghp_0123456789abcdefghij",
    }
    settings = settings_for(tmp_path, **secrets)
    managed = build_runtime(settings, ServerConfig({}, {}), runtime.redis, runtime.keys)
    await scenario(managed)
    client = await aiohttp_client(create_app(managed))
    for path in ("/", f"/repos/{REPO}", "/repos/nobody/nothing"):
        body = await (await client.get(path)).text()
        for secret in (*secrets.values(), API_TOKEN):
            assert secret not in body


async def test_storage_down_is_a_503_page(aiohttp_client: MakeClient, runtime: Runtime) -> None:
    nowhere = connect(f"redis://127.0.0.1:{free_port()}/0")
    config = ServerConfig({}, {REPO: {}})
    broken = build_runtime(runtime.settings, config, nowhere, runtime.keys)
    client = await aiohttp_client(create_app(broken))
    try:
        for path in ("/", f"/repos/{REPO}"):
            shown = await page(client, path, status=503)
            assert "Storage unavailable" in shown.text
    finally:
        await nowhere.aclose()


async def test_a_repo_held_in_shadow_says_so_and_why(client: Client, runtime: Runtime) -> None:
    await scenario(runtime)
    held = {"mode": "live", "cutover": {"min_parity": 0.95, "min_decisions": 20}}
    runtime.server_config = ServerConfig({}, {REPO: held})
    await EvidenceStore(runtime).put(REPO, Evidence(0.9, 30, 3, datetime.now(UTC)))

    repo_page = (await page(client, f"/repos/{REPO}")).text
    assert "shadow: decisions only, nothing pushed" in repo_page
    assert "held in shadow: stays in shadow: parity 90.0%, 95.0% needed" in repo_page
    assert "held in shadow" in (await page(client, "/")).text

    await EvidenceStore(runtime).put(REPO, Evidence(0.96, 30, 1, datetime.now(UTC)))
    assert "held in shadow" not in (await page(client, f"/repos/{REPO}")).text


async def test_a_follow_up_page_before_the_notifier_stored_it_and_an_unknown_one(
    client: Client, runtime: Runtime
) -> None:
    """A GitHub text links to the page the moment the block is in the log."""
    manage(runtime, REPO, forge="github")
    await emit(
        runtime,
        approve(), finalize(), push(),
        raw_event("integration_blocked", blocked_at=at(10), base_sha=SHA_D),
    )  # fmt: skip
    shown = await page(client, f"/repos/{REPO}/followups/pr-1-integration-blocked-aaaaaaa")
    assert "Merge conflict: pr-1" in shown.text
    assert "does not merge cleanly into main at ddddddd" in shown.text
    assert "Comment /mergebot resume on the pull request" in shown.text
    assert "https://github.com/acme/widgets/pull/1" in shown.links()
    await page(client, f"/repos/{REPO}/followups/nope", status=404)
