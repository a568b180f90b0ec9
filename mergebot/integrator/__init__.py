"""The integrator: a pure planner over the train (`planner.py`), a runner that records each step
before performing it (`runner.py`), and the processor's READY hook with its service (`hook.py`).
See docs/design.md, "The train"."""

from mergebot.integrator.hook import IntegratorHook, integrator_service, run_once, sweep
from mergebot.integrator.runner import (
    CRASH_ENV,
    STEPS,
    DrainResult,
    Integrator,
    StopDrainError,
    crash_point,
)

__all__ = [
    "CRASH_ENV",
    "STEPS",
    "DrainResult",
    "Integrator",
    "IntegratorHook",
    "StopDrainError",
    "crash_point",
    "integrator_service",
    "run_once",
    "sweep",
]
