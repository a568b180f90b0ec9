"""The stored readiness projection of a repo: its facts, candidate states and checkpoint.

One hash per repo (`keys.projection(repo)`): `state` (the JSON of `ProjectionState`),
`last_entry` (the id of the newest event-log entry folded in), `rev` (a random token, new on every
save) and `note:<code>` counters of events that were stored but changed nothing. All of it is
written in one MULTI together with the capped list of recent notes, so a crash leaves either the
old or the new projection, never half.

Readers that ask often (status, dashboard, queue API) go through `ProjectionCache`: the state of
a busy repo is megabytes of JSON, and it changes only when the processor stores a batch, so they
parse it again only when `rev` changed. The processor keeps the state it stored last the same
way (`Projector`): the next batch reuses it when `rev` is still the one it wrote. A token, not a
counter: `mergebot replay --apply` moves a rebuilt hash into place, whose counter could equal
the old one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from mergebot.readiness import CandidateState, Note, RepoFacts
from mergebot.store.keys import Keys

NOTES_KEPT = 200


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


class ProjectionStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def load(self, repo: str) -> ProjectionState:
        state, _rev = await self.load_with_rev(repo)
        return state

    async def load_with_rev(self, repo: str) -> tuple[ProjectionState, str | None]:
        """The state and the `rev` token it was stored with (read together)."""
        raw = cast(
            list[str | None],
            await self.redis.hmget(self.keys.projection(repo), ["state", "last_entry", "rev"]),
        )
        if raw[0] is None:
            return ProjectionState.empty(repo), raw[2]
        state = ProjectionState.model_validate_json(raw[0])
        return state.model_copy(update={"last_entry": raw[1] or None}), raw[2]

    async def rev(self, repo: str) -> str | None:
        return cast(str | None, await self.redis.hget(self.keys.projection(repo), "rev"))

    async def save(
        self,
        state: ProjectionState,
        notes: Sequence[tuple[str | None, str | None, Note]] = (),
    ) -> str:
        """Store the projection, its checkpoint and (entry id, event name, note) records; the
        new `rev` token."""
        key = self.keys.projection(state.repo)
        rev = secrets.token_hex(8)
        notes_key = self.keys.projection_notes(state.repo)
        now = datetime.now(UTC)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "state", state.model_dump_json(exclude={"last_entry"}))
            pipe.hset(key, "rev", rev)
            if state.last_entry:
                pipe.hset(key, "last_entry", state.last_entry)
            for entry_id, event, note in notes:
                pipe.hincrby(key, f"note:{note.code.value}", 1)
                record = StoredNote(
                    at=now, entry_id=entry_id, event=event, code=note.code.value, text=note.text
                )
                pipe.lpush(notes_key, record.model_dump_json())
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
