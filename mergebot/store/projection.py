"""The stored readiness projection of a repo: its facts, candidate states and checkpoint.

One hash per repo (`keys.projection(repo)`): `state` (the JSON of `ProjectionState`),
`last_entry` (the id of the newest event-log entry folded in), and `note:<code>` counters of
events that were stored but changed nothing. All of it is written in one MULTI together with the
capped list of recent notes, so a crash leaves either the old or the new projection, never half.
"""

from __future__ import annotations

import json
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
        raw = cast(
            list[str | None],
            await self.redis.hmget(self.keys.projection(repo), ["state", "last_entry"]),
        )
        if raw[0] is None:
            return ProjectionState.empty(repo)
        state = ProjectionState.model_validate_json(raw[0])
        return state.model_copy(update={"last_entry": raw[1] or None})

    async def save(
        self,
        state: ProjectionState,
        notes: Sequence[tuple[str | None, str | None, Note]] = (),
    ) -> None:
        """Store the projection, its checkpoint and (entry id, event name, note) records."""
        key = self.keys.projection(state.repo)
        notes_key = self.keys.projection_notes(state.repo)
        now = datetime.now(UTC)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "state", state.model_dump_json(exclude={"last_entry"}))
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

    async def counters(self, repo: str) -> dict[str, int]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.projection(repo)))
        return {k.removeprefix("note:"): int(v) for k, v in raw.items() if k.startswith("note:")}

    async def recent_notes(self, repo: str, limit: int = 20) -> list[StoredNote]:
        rows = cast(
            list[str], await self.redis.lrange(self.keys.projection_notes(repo), 0, limit - 1)
        )
        return [StoredNote.model_validate(json.loads(row)) for row in rows]
