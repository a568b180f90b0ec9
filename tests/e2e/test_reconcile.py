"""Reconciliation recovers exactly what dropped webhooks would have stored, and only once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mergebot.config import ServerConfig
from mergebot.events import Envelope
from mergebot.forge.github import GitHubForge
from mergebot.github.reconcile import reconcile_all, reconcile_repo
from mergebot.github.translate import translate
from mergebot.github.translated import PendingApproval
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.fakegithub.harness import mergebot_for, settings_for
from tests.fakegithub.server import FakeGitHub

REPO = "acme/widgets"


def identity(name: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two events "the same fact", whatever their timestamps or ids."""
    keys = ("slug", "branch", "sha", "reviewer_session_id", "reason")
    return (name, *(payload.get(k) for k in keys))


def translated_identities(deliveries: list[Any]) -> set[tuple[Any, ...]]:
    out = set()
    for delivery in deliveries:
        translation = translate(delivery.event, delivery.payload, lambda _: "main")
        for draft in translation.events:
            event = draft.complete(1) if isinstance(draft, PendingApproval) else draft
            out.add(identity(event.event_name.value, event.model_dump(mode="json")))
    return out


async def log_of(runtime: Any) -> list[Envelope]:
    return [entry.envelope async for entry in runtime.eventlog.replay(repo=REPO)]


async def test_one_pass_recovers_exactly_the_dropped_events_and_a_second_adds_nothing(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    repo = fake_github.add_repo(REPO)
    repo.permissions.update({"alice": "write", "carol": "write"})
    config = ServerConfig({}, {REPO: {"forge": "github", "remote": str(repo.bare)}})
    settings = settings_for(fake_github, tmp_path / "data")
    async with mergebot_for(fake_github, redis, keys, config, settings) as runtime:
        # Delivered normally: two pull requests opened, one approved.
        repo.remote.branch_with("one", "one.txt", "1\n")
        repo.remote.branch_with("three", "three.txt", "3\n")
        await fake_github.sync()
        one = await fake_github.open_pull(REPO, "one", "bob")
        three = await fake_github.open_pull(REPO, "three", "bob")
        await fake_github.review(REPO, one, "alice")
        delivered = len(await log_of(runtime))
        assert delivered > 0
        assert all(d.status == 200 for d in fake_github.sender.sent())

        # GitHub loses every webhook from here on.
        fake_github.sender.dropping = True
        first_dropped = len(fake_github.sender.deliveries)
        new_head = await fake_github.push(REPO, "one", "one.txt", "1 again\n")
        await fake_github.review(REPO, one, "carol")
        repo.remote.branch_with("two", "two.txt", "2\n")
        await fake_github.sync()
        two = await fake_github.open_pull(REPO, "two", "dave")
        await fake_github.review(REPO, two, "alice")
        await fake_github.close_pull(REPO, three, "bob")
        dropped = fake_github.sender.deliveries[first_dropped:]
        assert {d.event for d in dropped} == {"push", "pull_request", "pull_request_review"}
        assert len(await log_of(runtime)) == delivered  # nothing arrived

        forge = runtime.forge_for(REPO)
        assert isinstance(forge, GitHubForge)
        result = await reconcile_repo(runtime, forge, REPO)

        entries = await log_of(runtime)
        added = entries[delivered:]
        assert result.appended == len(added)
        assert {e.source for e in added} == {"reconcile"}
        recovered = {identity(e.name.value, e.payload) for e in added}
        assert recovered == translated_identities(dropped)
        assert ("finalize_ready", f"pr-{one}", "one", new_head, None, None) in recovered
        assert ("candidate_withdrawn", f"pr-{three}", None, None, None, "closed") in recovered
        approvals = [e for e in added if e.name == "review_approved"]
        assert {(e.payload["slug"], e.payload["reviewer_session_id"]) for e in approvals} == {
            (f"pr-{one}", "carol"),
            (f"pr-{two}", "alice"),
        }

        # A second pass (the periodic service's) finds nothing missing.
        again = await reconcile_all(runtime)
        assert [r.appended for r in again] == [0]
        assert len(await log_of(runtime)) == len(entries)


async def test_nothing_is_added_when_no_webhook_was_lost(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    repo = fake_github.add_repo(REPO)
    repo.permissions["alice"] = "write"
    config = ServerConfig({}, {REPO: {"forge": "github", "remote": str(repo.bare)}})
    async with mergebot_for(
        fake_github, redis, keys, config, settings_for(fake_github, tmp_path / "d")
    ) as runtime:
        repo.remote.branch_with("one", "one.txt", "1\n")
        await fake_github.sync()
        number = await fake_github.open_pull(REPO, "one", "bob")
        await fake_github.review(REPO, number, "alice")
        before = len(await log_of(runtime))

        (result,) = await reconcile_all(runtime)

        assert result.appended == 0
        assert len(await log_of(runtime)) == before
