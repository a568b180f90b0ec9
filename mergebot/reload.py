"""Re-reading the server file on SIGHUP: a mode switch (or a rollback to shadow) without a restart.

`serve`, `web` and `worker` call `reload_server_config` from their SIGHUP handler. It reads and
validates the whole file first; a file that does not parse or validate changes nothing (the
running configuration stays, and a WARNING lists every problem). A good file replaces
`Runtime.server_config` in one assignment on the event loop, so every reader sees either the old
or the new file, never a mix; the effective configs the processor keeps per base sha are dropped
(they overlay the old file) and `Runtime.config_reloaded` wakes the services that depend on the
file (the cutover evaluation). Nothing is stopped or restarted: requests, the event log's
consumers and a drain in progress go on, and the integrator reads the repo's mode again before
each candidate. A repo's `remote` of an existing mirror and `templates_dir` are read at first use
and need a restart to change.
"""

from __future__ import annotations

import logging

from mergebot.config import ConfigError, load_server_config
from mergebot.runtime import Runtime

log = logging.getLogger("mergebot.reload")


def reload_server_config(runtime: Runtime) -> bool:
    """Replace the running server config by the file as it is now; False (and the old config
    kept) when the file is invalid."""
    path = runtime.settings.config_path()
    try:
        fresh = load_server_config(path)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        log.warning("config_reload_refused file=%s kept=previous problems=%s", path, problems)
        return False
    old = runtime.server_config
    runtime.server_config = fresh
    runtime.effective_configs = None
    for repo in sorted(set(old.repos) | set(fresh.repos)):
        before = old.repo(repo).mode.value if old.managed(repo) else "unmanaged"
        after = fresh.repo(repo).mode.value if fresh.managed(repo) else "unmanaged"
        if before != after:
            log.info("config_mode_changed repo=%s from=%s to=%s", repo, before, after)
    log.info("config_reloaded file=%s repos=%d", path, len(fresh.repos))
    runtime.config_reloaded.set()
    return True
