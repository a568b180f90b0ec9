"""A checker for SPEC §11 that trusts nothing of mergebot but what it leaves behind: the remote's
reflog of the base branch (and the remote's commit graph), and the event log.

It knows no internal state, no queue, no key layout, so it judges any integrator — today's or a
rewritten one — by the same rules. `violations` returns one sentence per broken rule (empty: all
hold); callers assert it is empty and print it when not.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.gitutil import GitRemote, git

PASSED = "passed"


@dataclass(frozen=True)
class BaseUpdate:
    old: str
    new: str


def base_updates(remote: GitRemote, base: str = "main") -> list[BaseUpdate]:
    """Every update of `base` on the remote, oldest first (needs core.logAllRefUpdates)."""
    log = (remote.bare / "logs" / "refs" / "heads" / base).read_text().splitlines()
    return [BaseUpdate(line.split()[0], line.split()[1]) for line in log]


def base_updates_since(remote: GitRemote, start: str, base: str = "main") -> list[BaseUpdate]:
    """The updates of `base` after it was at `start` (what mergebot did, not the setup)."""
    updates = base_updates(remote, base)
    last = max((i for i, u in enumerate(updates) if u.new == start), default=-1)
    return updates[last + 1 :]


def is_ancestor_on(remote: GitRemote) -> Callable[[str, str], bool]:
    """`is_ancestor(a, b)` answered by the remote's own git."""

    def is_ancestor(a: str, b: str) -> bool:
        try:
            git(remote.bare, "merge-base", "--is-ancestor", a, b)
        except RuntimeError:
            return False
        return True

    return is_ancestor


def violations(
    updates: Sequence[BaseUpdate],
    events: Iterable[Mapping[str, Any]],
    *,
    is_ancestor: Callable[[str, str], bool],
    parents: Callable[[str], list[str]],
    acknowledged: Iterable[str] = (),
    settled: bool = True,
) -> list[str]:
    """What of SPEC §11 the history breaks. `events` are stored envelopes as JSON (`id`,
    `name`, `payload`); `acknowledged` are the ids a producer got a 2xx for; `settled` says the
    system was left to finish, so every READY candidate must have an outcome by now."""
    found: list[str] = []
    envelopes = list(events)
    by_name: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for envelope in envelopes:
        by_name[str(envelope["name"])].append(envelope["payload"])

    # base only ever moves by fast-forward, each update starting where the last one ended.
    previous: str | None = None
    for update in updates:
        if previous is not None and update.old != previous:
            found.append(f"base update {update.old[:7]}..{update.new[:7]} does not start at "
                         f"{previous[:7]}, where base was")  # fmt: skip
        if set(update.old) != {"0"} and not is_ancestor(update.old, update.new):
            found.append(f"base moved {update.old[:7]} -> {update.new[:7]}: not a fast-forward")
        previous = update.new

    # ... and only to a commit whose checks passed (an integration_completed says so).
    completed = by_name["integration_completed"]
    landed_at = {str(p["main_after"]): p for p in completed}
    for update in updates:
        event = landed_at.get(update.new)
        if event is None:
            if settled:
                found.append(f"base moved to {update.new[:7]}, which no integration_completed "
                             "reports")  # fmt: skip
            continue
        failed = [c for c in event.get("checks", []) if c.get("state") != PASSED]
        if failed:
            found.append(f"base moved to {update.new[:7]} with checks not passed: {failed}")

    # Only approved shas reach base, each at most once.
    approvals = by_name["review_approved"]
    dismissed = {(p["slug"], p["reviewer_session_id"]) for p in by_name["review_dismissed"]}
    for payload in completed:
        slug, sha = payload["slug"], payload["sha"]
        approved = [
            a for a in approvals
            if a["slug"] == slug and a.get("sha") in (None, sha)
            and (slug, a["reviewer_session_id"]) not in dismissed
        ]  # fmt: skip
        if not approved:
            found.append(f"{slug} ({sha[:7]}) reached base without an approval")
    for sha, count in Counter(str(p["sha"]) for p in completed).items():
        if count > 1:
            found.append(f"{sha[:7]} was reported integrated {count} times")
    if updates:
        merged: Counter[str] = Counter()
        for update in updates:
            for parent in _merged(update, parents):
                merged[parent] += 1
        for sha, count in merged.items():
            if count > 1:
                found.append(f"{sha[:7]} was merged into base {count} times")

    # A candidate blocked for its checks or a conflict is not on base (a batch it was in
    # landed without it).
    tip = updates[-1].new if updates else None
    for payload in by_name["integration_blocked"]:
        sha = str(payload["sha"])
        content = payload.get("reason") in ("checks_failed", "merge_conflict")
        if tip is not None and content and is_ancestor(sha, tip):
            found.append(f"{payload['slug']} ({sha[:7]}) was blocked but is on base")

    # Every candidate that became READY ends with an outcome.
    if settled:
        outcomes = {(p["slug"], p["sha"]) for p in completed}
        outcomes |= {(p["slug"], p["sha"]) for p in by_name["integration_blocked"]}
        pushed = {(p["branch"], p["sha"]) for p in by_name["branch_pushed"]}
        for ready in by_name["finalize_ready"]:
            key = (ready["slug"], ready["sha"])
            approved = any(
                a["slug"] == ready["slug"] and a.get("sha") in (None, ready["sha"])
                for a in approvals
            )
            if approved and (ready["branch"], ready["sha"]) in pushed and key not in outcomes:
                found.append(f"{key[0]} ({key[1][:7]}) became ready and never ended")

    # A request answered 2xx is in the event log.
    stored = {str(e["id"]) for e in envelopes}
    for event_id in acknowledged:
        if event_id not in stored:
            found.append(f"event {event_id} was acknowledged but is not in the event log")
    return found


def _merged(update: BaseUpdate, parents: Callable[[str], list[str]]) -> list[str]:
    """The commits merged into base by one update: the second parents along its first-parent
    chain (one per candidate of a batch), newest first."""
    out: list[str] = []
    at = update.new
    for _ in range(1000):
        if at == update.old:
            break
        found = parents(at)
        if not found:
            break
        out += found[1:]
        at = found[0]
    return out
