"""The dashboard in a real browser (Debian's chromium, driven by Playwright): a queue with
integrating, queued, blocked and waiting candidates, a follow-up link followed to its page, both
looked at as a phone (390 px) and a laptop (1280 px) would: every section there, nothing wider
than the screen. Screenshots are kept under `.artifacts/dashboard/` (ignored by git) for people
to look at.

A missing browser is a failure, not a skip: `.ci/run` installs chromium and the Python package,
and a skip would hide that the pages were never looked at.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mergebot.attempts import Attempt, AttemptStore
from mergebot.followups import Followup
from mergebot.main import create_app
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.store.followups import FollowupStore
from mergebot.store.lease import Lease
from mergebot.store.queue import QueueStore
from tests import notify_data as hostile
from tests.brainkit import emit, process, queue_items
from tests.factories import REPO, SHA_B
from tests.unit.test_readiness import approve, finalize, push
from tests.web.test_dashboard import scenario

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "dashboard"
SHA_E = "e" * 40
FOLLOWUP = "pr-4-integration-blocked-eeeeeee"
WIDTHS = (390, 1280)

MakeServer = Callable[[web.Application], Awaitable[TestServer]]


def _browser_or_fail() -> None:
    try:
        import playwright.async_api  # noqa: F401, PLC0415 - the failure below says what to install
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install -e '.[test]'")
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)")


async def busy_queue(runtime: Runtime) -> None:
    """pr-2 integrating (a command running for 2 minutes), pr-1 queued, pr-4 blocked on a
    conflict with hostile names and 500 files, pr-3 waiting for its push."""
    await scenario(runtime)
    await emit(
        runtime,
        approve(sha=SHA_E, slug="pr-4"), finalize(SHA_E, 6, hostile.HOSTILE_BRANCH, slug="pr-4"),
        push(SHA_E, 6, hostile.HOSTILE_BRANCH),
    )  # fmt: skip
    await process(runtime)
    items = {item.slug: item for item in await queue_items(runtime)}
    store = QueueStore(runtime.redis, runtime.keys)
    blocked = items["pr-4"]
    await store.transition(REPO, "main", blocked.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", blocked.id, Status.BLOCKED, cause="conflict", followup_id=FOLLOWUP,
        reasons=["merge_conflict: CONFLICT (content): Merge conflict in a.txt"],
    )  # fmt: skip
    now = datetime.now(UTC)
    followup = Followup(
        id=FOLLOWUP, repo=REPO, slug="pr-4", branch=hostile.HOSTILE_BRANCH, sha=SHA_E,
        base="main", reason="merge_conflict",
        details={"files": hostile.HOSTILE_FILES, "base_sha": SHA_B,
                 "message": hostile.HOSTILE_MESSAGE},
        blocked_at=now, event_id="e-4", created_at=now, updated_at=now,
    )  # fmt: skip
    await FollowupStore(runtime.redis, runtime.keys).create(followup)
    current = items["pr-2"]
    await store.transition(REPO, "main", current.id, Status.IN_PROGRESS, cause="picked")
    running = {
        "name": "pytest -q tests/ --maxfail=1 " + "x" * 120,
        "kind": "command",
        "started_at": (now - timedelta(seconds=130)).isoformat(),
    }
    attempt = Attempt(
        item_id=current.id, base_sha="d" * 40, commit="f" * 40,
        branch="mergebot/integration/pr-2", running=running,
    )  # fmt: skip
    await AttemptStore(runtime.redis, runtime.keys).put(REPO, "main", attempt)
    lease = Lease(runtime.redis, runtime.keys, REPO, "main", "worker-host-a1b2c3-integrator-7")
    assert await lease.acquire()


async def test_the_dashboard_and_a_follow_up_page_in_a_browser(
    aiohttp_server: MakeServer, runtime: Runtime
) -> None:
    _browser_or_fail()
    from playwright.async_api import async_playwright  # noqa: PLC0415 - checked just above

    await busy_queue(runtime)
    server = await aiohttp_server(create_app(runtime))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    followup_path = f"/repos/{REPO}/followups/{quote(FOLLOWUP)}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for width in WIDTHS:
                page = await browser.new_page(viewport={"width": width, "height": 900})
                await page.goto(str(server.make_url(f"/repos/{REPO}")))
                for heading in ("Integrating now", "Queue", "Blocked", "Waiting, not ready"):
                    assert await page.get_by_role("heading", name=heading).is_visible(), heading
                text = await page.inner_text("main")
                assert "Running pytest -q tests/" in text
                assert "for 2m" in text  # the running command and how long it has run
                assert "pr-1" in text
                assert "pr-3" in text
                assert text.count("merge conflict") == 1  # the reason, once, in words
                assert "merge_conflict" not in text
                assert "comment /mergebot resume" not in text  # a plain remote: the CLI hint
                await _no_horizontal_scroll(page, f"dashboard at {width}px")
                await page.screenshot(path=str(ARTIFACTS / f"repo-{width}.png"), full_page=True)

                await page.click(f"a[href='{followup_path}']")
                await page.wait_for_url(f"**{followup_path}")
                for section in ("summary", "conflict", "files", "todo", "resume"):
                    assert await page.locator(f"#{section}").is_visible(), section
                body = await page.inner_text("main")
                assert "git merge origin/main" in body
                assert f"mergebot resume {REPO} pr-4" in body
                assert "… and 400 more" in body
                assert await page.locator("script, img").count() == 0  # hostile names are text
                await _no_horizontal_scroll(page, f"follow-up page at {width}px")
                await page.screenshot(path=str(ARTIFACTS / f"followup-{width}.png"), full_page=True)
                await page.screenshot(path=str(ARTIFACTS / f"followup-{width}-top.png"))
                await page.close()
        finally:
            await browser.close()


async def _no_horizontal_scroll(page: object, where: str) -> None:
    widths = await page.evaluate(  # type: ignore[attr-defined]
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{where}: the page is {widths[0]}px wide on {widths[1]}px"
