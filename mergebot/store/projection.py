"""The stored readiness projection of a repo: its facts, candidate states and checkpoint.

Kept per slug, so a batch writes back what it touched, not what the repo ever held:
`keys.projection_slugs(repo)` maps each slug to its facts and candidate states,
`keys.projection_pushes(repo)` each branch to its `branch_pushed` facts, and
`keys.projection(repo)` holds `last_entry` (the id of the newest event-log entry folded in),
`freezes` (the repo's `queue_frozen`/`queue_unfrozen` facts, a short list written whole),
`rev` (a random token, new on every save) and `note:<code>` counters of events that were stored
but changed nothing. A save writes the changed fields, the checkpoint and the capped list of
recent notes in one MULTI, and a load reads all three hashes in one MULTI, so a crash or a
concurrent reader sees either the old or the new projection, never half. A projection stored
as one JSON document (the `state` field, before this layout) is still read, and written out per
slug by the next save.

Readers that ask often (status, dashboard, queue API) go through `ProjectionCache`: it changes
only when the processor stores a batch, so they parse it again only when `rev` changed. The
processor keeps the state it stored last the same way (`Projector`): the next batch reuses it
when `rev` is still the one it wrote. A token, not a counter: `mergebot replay --apply` moves a
rebuilt hash into place, whose counter could equal the old one.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel, Field, TypeAdapter

from mergebot.readiness import CandidateState, FreezeFact, Note, PushFact, RepoFacts, SlugFacts
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.packed import HashReader

NOTES_KEPT = 200
# The field a projection was stored in as one JSON document, before it was kept per slug.
LEGACY_FIELD = "state"
FREEZES_FIELD = "freezes"


class ProjectionState(BaseModel):
    repo: str
    facts: RepoFacts
    candidates: dict[str, CandidateState] = Field(default_factory=dict)
    last_entry: str | None = None

    @classmethod
    def empty(cls, repo: str) -> ProjectionState:
        return cls(repo=repo, facts=RepoFacts(repo=repo))

    def canonical_json(self) -> str:
        """Equal projections give equal text (sorted keys, checkpoint left out)."""
        data = self.model_copy(
            update={
                "facts": self.facts.canonical(),
                "candidates": {k: self.candidates[k] for k in sorted(self.candidates)},
                "last_entry": None,
            }
        )
        return data.model_dump_json()


class StoredNote(BaseModel):
    at: datetime
    entry_id: str | None
    event: str | None
    code: str
    text: str


def entry_order(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


class SlugRecord(BaseModel):
    """What `projection_slugs` keeps per slug: its facts and its candidates' states."""

    facts: SlugFacts
    candidates: list[CandidateState] = Field(default_factory=list)


class SlugCandidates(BaseModel):
    """A slug record read for its candidate states alone: its facts are skipped, not parsed."""

    candidates: list[CandidateState] = Field(default_factory=list)


_SLUG_RECORDS: TypeAdapter[dict[str, SlugRecord]] = TypeAdapter(dict[str, SlugRecord])
_SLUG_CANDIDATES: TypeAdapter[dict[str, SlugCandidates]] = TypeAdapter(dict[str, SlugCandidates])
_PUSH_LISTS: TypeAdapter[dict[str, list[PushFact]]] = TypeAdapter(dict[str, list[PushFact]])
_PUSH_LIST: TypeAdapter[list[PushFact]] = TypeAdapter(list[PushFact])
_FREEZES: TypeAdapter[list[FreezeFact]] = TypeAdapter(list[FreezeFact])


def parse_record(text: str) -> SlugRecord:
    return SlugRecord.model_validate_json(text)


def joined_json(fields: dict[str, str]) -> str:
    """One JSON object of hash fields whose values are JSON already: parsed in one call, which
    is several times faster than one parse per field."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}"


class ProjectionStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def load(self, repo: str) -> ProjectionState:
        state, _rev = await self.load_with_rev(repo)
        return state

    async def load_with_rev(self, repo: str) -> tuple[ProjectionState, str | None]:
        """The state and the `rev` token it was stored with (read together, in one MULTI)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(
                self.keys.projection(repo), ["last_entry", "rev", LEGACY_FIELD, FREEZES_FIELD]
            )
            pipe.hgetall(self.keys.projection_slugs(repo))
            pipe.hgetall(self.keys.projection_pushes(repo))
            meta, slugs, pushes = await pipe.execute()
        last_entry, rev, legacy, freezes = cast(list[str | None], meta)
        if legacy is not None and not slugs:
            # Stored as one JSON document before the projection was kept per slug: read it, and
            # let the next save write it out per slug (and drop the old field).
            state = ProjectionState.model_validate_json(legacy)
            state.facts.mark_all_changed()
        else:
            state = self._assemble(repo, cast(dict[str, str], slugs), cast(dict[str, str], pushes))
            if freezes:
                state.facts.freezes = _FREEZES.validate_json(freezes)
        state.last_entry = last_entry or None
        return state, rev

    def _assemble(
        self, repo: str, slugs: dict[str, str], pushes: dict[str, str]
    ) -> ProjectionState:
        records = _SLUG_RECORDS.validate_json(joined_json(slugs)) if slugs else {}
        facts = RepoFacts(
            repo=repo,
            slugs={name: record.facts for name, record in records.items()},
            pushes=_PUSH_LISTS.validate_json(joined_json(pushes)) if pushes else {},
        )
        candidates = {c.key: c for record in records.values() for c in record.candidates}
        return ProjectionState(repo=repo, facts=facts, candidates=candidates)

    async def candidates_with_rev(self, repo: str) -> tuple[dict[str, CandidateState], str | None]:
        """The candidate states alone, by key, and the `rev` they were stored with (read in one
        call, each hash as one string): for readers that show states, such as status, which
        then parse neither facts nor pushes (a third of the work of a whole load)."""
        meta, slugs = await HashReader(self.redis).read(
            [self.keys.projection(repo), self.keys.projection_slugs(repo)]
        )
        if meta.get(LEGACY_FIELD) and not slugs:
            state, rev = await self.load_with_rev(repo)
            return state.candidates, rev
        records = _SLUG_CANDIDATES.validate_json(joined_json(slugs)) if slugs else {}
        states = {c.key: c for record in records.values() for c in record.candidates}
        return states, meta.get("rev")

    async def load_slugs(self, repo: str, slugs: Sequence[str]) -> ProjectionState:
        """The part of the projection that decides `slugs`: their facts and states, and the
        pushes of their branches (what `readiness.evaluate` reads for them)."""
        rows = cast(
            list[str | None], await self.redis.hmget(self.keys.projection_slugs(repo), list(slugs))
        )
        found = {name: raw for name, raw in zip(slugs, rows, strict=True) if raw is not None}
        if not found and await self.redis.hexists(self.keys.projection(repo), LEGACY_FIELD):
            return await self.load(repo)  # stored before the projection was kept per slug
        records = _SLUG_RECORDS.validate_json(joined_json(found)) if found else {}
        branches = sorted({f.branch for r in records.values() for f in r.facts.finalizes})
        pushes: dict[str, str] = {}
        if branches:
            raw_pushes = cast(
                list[str | None],
                await self.redis.hmget(self.keys.projection_pushes(repo), branches),
            )
            pushes = {b: p for b, p in zip(branches, raw_pushes, strict=True) if p is not None}
        return self._assemble(repo, found, pushes)

    async def stored_text(self, repo: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """The stored JSON of every slug and every branch's pushes (the repo's freezes under
        the pushes' empty branch name), unparsed; None when the projection is stored in the
        older single-document layout."""
        meta, slugs, pushes = await HashReader(self.redis).read(
            [
                self.keys.projection(repo),
                self.keys.projection_slugs(repo),
                self.keys.projection_pushes(repo),
            ]
        )
        if meta.get(LEGACY_FIELD):
            return None
        return slugs, {**pushes, "": meta.get(FREEZES_FIELD) or "[]"}

    async def freezes(self, repo: str) -> list[FreezeFact]:
        """The repo's freeze facts alone (one HGET: the integrator asks before every move)."""
        raw = cast(str | None, await self.redis.hget(self.keys.projection(repo), FREEZES_FIELD))
        return _FREEZES.validate_json(raw) if raw else []

    async def rev(self, repo: str) -> str | None:
        return cast(str | None, await self.redis.hget(self.keys.projection(repo), "rev"))

    async def save(
        self,
        state: ProjectionState,
        notes: Sequence[tuple[str | None, str | None, Note]] = (),
        *,
        slugs: Iterable[str] = (),
    ) -> str:
        """Store what changed since the last save (the slugs and push branches the facts
        recorded as changed, plus `slugs` whose candidate states were re-decided), the
        checkpoint, and (entry id, event name, note) records, in one MULTI; the new `rev`."""
        key = self.keys.projection(state.repo)
        rev = secrets.token_hex(8)
        notes_key = self.keys.projection_notes(state.repo)
        now = datetime.now(UTC)
        changed_slugs, changed_branches = state.facts.take_changed()
        records, pushes = stored_records(state, changed_slugs | set(slugs), changed_branches)
        async with self.redis.pipeline(transaction=True) as pipe:
            if records:
                pipe.hset(self.keys.projection_slugs(state.repo), mapping=cast(Any, records))
            if pushes:
                pipe.hset(self.keys.projection_pushes(state.repo), mapping=cast(Any, pushes))
            pipe.hdel(key, LEGACY_FIELD)
            if state.facts.freezes:
                pipe.hset(key, FREEZES_FIELD, _FREEZES.dump_json(state.facts.freezes).decode())
            pipe.hset(key, "rev", rev)
            if state.last_entry:
                pipe.hset(key, "last_entry", state.last_entry)
            for code, count in Counter(note.code.value for _e, _n, note in notes).items():
                pipe.hincrby(key, f"note:{code}", count)
            for entry_id, event, note in notes[-NOTES_KEPT:]:  # the list keeps no more anyway
                record_ = StoredNote(
                    at=now, entry_id=entry_id, event=event, code=note.code.value, text=note.text
                )
                pipe.lpush(notes_key, record_.model_dump_json())
            if notes:
                pipe.ltrim(notes_key, 0, NOTES_KEPT - 1)
            await pipe.execute()
        return rev

    async def counters(self, repo: str) -> dict[str, int]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.projection(repo)))
        return {k.removeprefix("note:"): int(v) for k, v in raw.items() if k.startswith("note:")}

    async def recent_notes(self, repo: str, limit: int = 20) -> list[StoredNote]:
        rows = cast(
            list[str], await self.redis.lrange(self.keys.projection_notes(repo), 0, limit - 1)
        )
        return [StoredNote.model_validate(json.loads(row)) for row in rows]


def stored_records(
    state: ProjectionState, slugs: Iterable[str], branches: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The stored text of these slugs' records and these branches' pushes: what `save` writes
    for them, and what a replay compares with the stored text without writing it."""
    records: dict[str, str] = {}
    by_slug: dict[str, list[CandidateState]] = {name: [] for name in slugs}
    if by_slug:
        for candidate in state.candidates.values():
            if candidate.slug in by_slug:
                by_slug[candidate.slug].append(candidate)
        for name, candidates in by_slug.items():
            facts = state.facts.slugs.get(name)
            if facts is None and not candidates:
                continue
            # Candidates in key order (facts are kept sorted): equal projections store
            # equal text, so a replay compares them without parsing.
            candidates.sort(key=lambda c: c.key)
            record = SlugRecord(facts=facts or SlugFacts(), candidates=candidates)
            records[name] = record.model_dump_json()
    pushes = {
        branch: _PUSH_LIST.dump_json(state.facts.pushes[branch]).decode()
        for branch in branches
        if branch in state.facts.pushes
    }
    return records, pushes


def stored_text_of(state: ProjectionState) -> tuple[dict[str, str], dict[str, str]]:
    """What `ProjectionStore.stored_text` would read back once `state` was saved whole."""
    slugs = set(state.facts.slugs) | {c.slug for c in state.candidates.values()}
    records, pushes = stored_records(state, slugs, state.facts.pushes)
    freezes = _FREEZES.dump_json(state.facts.freezes).decode() if state.facts.freezes else "[]"
    return records, {**pushes, "": freezes}


class ProjectionCache:
    """Parsed projections, reused while their stored `rev` is unchanged (one cheap HGET).

    For readers only: the state returned is shared between callers and must not be changed.
    A projection stored without a `rev` (before this field existed) is parsed every time until
    the processor saves it again.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, ProjectionState]] = {}

    async def load(self, store: ProjectionStore, repo: str) -> ProjectionState:
        key = store.keys.projection(repo)
        held = self._held.get(key)
        if held is not None and held[0] == await store.rev(repo):
            return held[1]
        state, rev = await store.load_with_rev(repo)
        if rev is None:
            self._held.pop(key, None)
        else:
            self._held[key] = (rev, state)
        return state
