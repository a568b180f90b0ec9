"""`mergebot cutover report <repo> [--since DATE] [--json]`: mergebot's shadow decisions against
what people did on base meanwhile — parity, and every disagreement with why."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from mergebot.commands.support import CommandError, in_runtime, repo_name
from mergebot.cutover_facts import cutover_report, mode_decision
from mergebot.git.mirror import GitError
from mergebot.runtime import Runtime

HELP = "compare shadow-mode decisions with what happened on base (parity, disagreements)"


def since_date(text: str) -> datetime:
    """An argparse `type`: an ISO date or date-time; without an offset it is UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date (2026-11-25) or date-time (2026-11-25T10:00:00+00:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cutover_command", metavar="ACTION", required=True)
    report = sub.add_parser("report", help=HELP, description=HELP)
    report.add_argument("repo", type=repo_name, help="the repo (owner/name)")
    report.add_argument("--since", type=since_date, help="only decisions made at or after DATE")
    report.add_argument("--json", action="store_true", help="the report as a JSON object")


async def _report(runtime: Runtime, repo: str, since: datetime | None) -> dict[str, Any]:
    if not runtime.server_config.managed(repo):
        raise CommandError(f"{repo} is not a managed repo")
    try:
        report = await cutover_report(runtime, repo, since)
    except GitError as exc:
        raise CommandError(f"cannot ask git about {repo}: {exc}") from None
    decision, evidence = await mode_decision(runtime, repo)
    config = runtime.server_config.repo(repo)
    return {**report.to_dict(), "gate": decision.to_dict(config.cutover, evidence)}


def _percent(value: float | None) -> str:
    return "n/a (nothing compared yet)" if value is None else f"{value * 100:.1f}%"


def render(report: dict[str, Any]) -> str:
    """The human view: the numbers, the gate, then every disagreement and what was not compared."""
    since = f" since {report['since']}" if report["since"] else ""
    gate = report["gate"]
    lines = [
        f"{report['repo']}: shadow decisions{since}: {report['decisions']}, "
        f"compared {report['compared']}, agree {report['agreements']}, "
        f"disagree {len(report['disagreements'])}",
        f"parity: {_percent(report['parity'])}",
        f"mode: {gate['mode']} (configured {gate['requested_mode']}) — {gate['reason']}",
    ]
    for title, rows in (
        ("disagreements", report["disagreements"]),
        ("not compared", report["not_compared"]),
    ):
        if rows:
            lines.append(f"{title}:")
        for row in rows:
            lines.append(
                f"  {row['slug']} {row['sha'][:7]} ({row['branch']}): "
                f"{row['decision'].replace('_', ' ')} — {row['why']}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        report = in_runtime(
            lambda runtime: _report(runtime, args.repo, args.since), doing="read the shadow record"
        )
    except CommandError as exc:
        return exc.exit()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
