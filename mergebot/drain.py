"""`python -m mergebot.drain --repo owner/name`: run the integrator once for one repo.

It takes the repo's lease (or reports who holds it), recovers what a crashed holder left, drains
the queue, waits the grace window, releases the lease and exits, printing what it did as JSON.
Useful to operators who run integration from a scheduler, and to the crash tests, which kill it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from mergebot.config import ConfigError, Settings
from mergebot.integrator import Integrator
from mergebot.runtime import open_runtime
from mergebot.sandbox import SandboxError, isolate_checks


async def _main(repo: str, base: str | None) -> int:
    settings = Settings()
    isolate_checks(settings)
    async with open_runtime(settings) as runtime:
        if not runtime.server_config.managed(repo):
            print(f"mergebot: {repo} is not a managed repo", file=sys.stderr)
            return 2
        result = await Integrator(runtime, repo, base).drain()
    print(json.dumps(result.as_json()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mergebot.drain", description=__doc__)
    parser.add_argument("--repo", required=True, help="owner/name of a managed repo")
    parser.add_argument("--base", help="base branch (default: the repo's base_branch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return asyncio.run(_main(args.repo, args.base))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    except SandboxError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
