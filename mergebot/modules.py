"""Optional modules: the pieces of mergebot that plug in by existing (route modules, background
services, subcommands, the integrator for `ingest-event --integrate`).

A module that is not there is skipped; a module that is there but fails to import — because
something *it* imports is missing, or because of any other error — is a bug and is raised.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def optional_import(name: str) -> ModuleType | None:
    """The module `name`, or None when neither it nor a package above it exists."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            return None
        raise
