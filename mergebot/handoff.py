"""The processor-to-integrator handoff: the pipeline's most important arrow, as a type.

The processor announces that (repo, base) has queued work; the integrator listens. Neither
imports the other: both import this port, and the composition root (`mergebot.main`) starts the
integrator's service, which sets `Runtime.ready_hook`, before the processor's.
"""

from __future__ import annotations

from typing import Protocol


class ReadyHook(Protocol):
    """Told after candidates were queued for (repo, base); the integrator implements it."""

    async def candidate_ready(self, repo: str, base: str) -> None: ...
