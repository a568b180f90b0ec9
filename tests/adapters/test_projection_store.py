"""The projection kept per slug: a batch writes back what it touched, readers see it whole."""

from __future__ import annotations

from mergebot.runtime import Runtime
from mergebot.store.projection import LEGACY_FIELD, ProjectionStore
from tests.adapters.test_status import SHA_C, scenario
from tests.brainkit import emit, process, queue_items
from tests.factories import REPO
from tests.unit.test_readiness import push


async def test_a_batch_writes_back_only_the_slugs_it_touched(runtime: Runtime) -> None:
    await scenario(runtime)
    key = runtime.keys.projection_slugs(REPO)
    assert sorted(await runtime.redis.hkeys(key)) == ["pr-1", "pr-2", "pr-3"]
    # Mark the records of pr-1 and pr-2: a batch about pr-3 alone must leave them as they are.
    untouched = {slug: await runtime.redis.hget(key, slug) for slug in ("pr-1", "pr-2")}
    await runtime.redis.hset(key, "pr-1", untouched["pr-1"] + " ")
    await emit(runtime, push(SHA_C, 6, "feature/three"))
    await process(runtime)
    assert await runtime.redis.hget(key, "pr-1") == untouched["pr-1"] + " "
    assert await runtime.redis.hget(key, "pr-2") == untouched["pr-2"]
    assert "pr-3" in {i.slug for i in await queue_items(runtime)}


async def test_one_slug_loads_the_same_states_as_the_whole_projection(runtime: Runtime) -> None:
    await scenario(runtime)
    store = ProjectionStore(runtime.redis, runtime.keys)
    whole = await store.load(REPO)
    part = await store.load_slugs(REPO, ["pr-2"])
    assert part.candidates == {k: c for k, c in whole.candidates.items() if c.slug == "pr-2"}
    assert part.facts.slugs == {"pr-2": whole.facts.slugs["pr-2"]}
    assert part.facts.pushes == {"feature/two": whole.facts.pushes["feature/two"]}


async def test_a_projection_stored_as_one_document_is_read_and_written_out_per_slug(
    runtime: Runtime,
) -> None:
    """Projections stored before the per-slug layout keep working after an upgrade."""
    await scenario(runtime)
    store = ProjectionStore(runtime.redis, runtime.keys)
    state = await store.load(REPO)
    await runtime.redis.delete(
        runtime.keys.projection_slugs(REPO), runtime.keys.projection_pushes(REPO)
    )
    await runtime.redis.hset(
        runtime.keys.projection(REPO), LEGACY_FIELD, state.model_dump_json(exclude={"last_entry"})
    )
    legacy = await store.load(REPO)
    assert legacy.canonical_json() == state.canonical_json()
    assert legacy.last_entry == state.last_entry
    assert (await store.load_slugs(REPO, ["pr-1"])).canonical_json() == state.canonical_json()
    await emit(runtime, push(SHA_C, 6, "feature/three"))
    await process(runtime)
    assert not await runtime.redis.hexists(runtime.keys.projection(REPO), LEGACY_FIELD)
    migrated = await store.load(REPO)
    assert set(migrated.facts.slugs) == {"pr-1", "pr-2", "pr-3"}
    assert "pr-3" in {i.slug for i in await queue_items(runtime)}
