"""Every Redis key mergebot uses, in one place (`mergebot:v1:…`).

Keys that one Lua script or MULTI touches share a hash tag so the layout works on Redis Cluster
unchanged: `{<owner>/<name>}` for everything of one repo, `{p<N>}` for an event-log partition.
The version segment lets a future layout live beside this one during a migration.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DEFAULT_PREFIX = "mergebot:v1"


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX
    partitions: int = 1

    # -- event log ---------------------------------------------------------------------------
    def partition_of(self, repo: str) -> int:
        """Which event-log partition holds a repo's events (stable across processes)."""
        return zlib.crc32(repo.encode()) % self.partitions

    def all_partitions(self) -> range:
        return range(self.partitions)

    def events(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}:events"

    def event_ids(self, partition: int) -> str:
        """Hash: envelope id -> "<stream entry id> <payload digest>" (idempotency index)."""
        return f"{self.prefix}:{{p{partition}}}:event-ids"

    def poison_events(self, partition: int) -> str:
        """Hash: stream entry id -> JSON of a log entry whose envelope cannot be read (its raw
        fields, the error, when it was found). Consumer groups acknowledge such an entry and move
        on instead of failing on it forever; it stays in the stream and is counted here."""
        return f"{self.prefix}:{{p{partition}}}:poison-events"

    def compaction(self, partition: int) -> str:
        """Hash: the partition's last compaction (`at`, `point`, `trimmed`) and `requested` when
        `mergebot compact` asked the partition's holder to compact."""
        return f"{self.prefix}:{{p{partition}}}:compaction"

    def processor_lease(self, partition: int) -> str:
        """Lease (same fields as the integration lease): which processor folds this partition.
        One writer per partition keeps "last applied entry" checkpoints exact."""
        return f"{self.prefix}:{{p{partition}}}:processor-lease"

    # -- per repo / base -----------------------------------------------------------------------
    def _repo(self, repo: str) -> str:
        return f"{self.prefix}:{{{repo}}}"

    def repo_scope(self, repo: str) -> str:
        """Prefix of every key of one repo; used by cleanup and by tests."""
        return self._repo(repo)

    def lease(self, repo: str, base: str) -> str:
        return f"{self._repo(repo)}:integration/{repo}/{base}"

    def lease_history(self, lease_key: str) -> str:
        """Hash beside a lease (same hash tag): its last `owner`, whether it `released`, and how
        many `takeovers` there were (a lease taken while its holder never released it)."""
        return f"{lease_key}:history"

    def queue(self, repo: str, base: str) -> str:
        """Sorted set of item ids by ready_at (the FIFO order)."""
        return f"{self._repo(repo)}:queue:{base}"

    def queue_version(self, repo: str, base: str) -> str:
        """Counter: incremented by every write to `items(repo, base)` (in the same script), so a
        reader knows without reading the items whether anything changed."""
        return f"{self._repo(repo)}:queue-version:{base}"

    def items(self, repo: str, base: str) -> str:
        """Hash: item id -> JSON of the queue item (status, times, history)."""
        return f"{self._repo(repo)}:items:{base}"

    def changes(self, repo: str) -> str:
        """Stream of every queue status change of a repo (written in the same Lua/MULTI as the
        change itself); the notifier and the dashboard read it."""
        return f"{self._repo(repo)}:changes"

    def poison_changes(self, repo: str) -> str:
        """Hash: stream entry id -> JSON of a `changes(repo)` entry no reader can parse (its raw
        fields, the error, when it was found). Readers acknowledge and skip it instead of stopping
        on it; it stays in the stream and is counted here (see `store/poison.py`)."""
        return f"{self._repo(repo)}:poison-changes"

    def check_signals(self, repo: str) -> str:
        """Pub/sub channel: a forge reported a check result for a commit (payload: the sha).
        A wake-up for a waiting integrator, never a record: it still asks the forge."""
        return f"{self._repo(repo)}:check-signals"

    def control_signals(self, repo: str) -> str:
        """Pub/sub channel: the processor folded a freeze or unfreeze of the repo. Wakes an
        integrator that holds a checked candidate while base may not move; never a record."""
        return f"{self._repo(repo)}:control-signals"

    def gate(self, repo: str, base: str) -> str:
        """Hash: base sha -> JSON of its clearance result (green or red, the failing check), so
        clearance commands run once per base sha; `last` -> the newest result; `waiting` -> the
        hold a checked candidate waits on right now (removed when it is released)."""
        return f"{self._repo(repo)}:gate:{base}"

    def projection(self, repo: str) -> str:
        """Hash: the projection's checkpoint (`last_entry`), `rev` token and `note:<code>`
        counters; the facts and states are in `projection_slugs` and `projection_pushes`."""
        return f"{self._repo(repo)}:projection"

    def projection_slugs(self, repo: str) -> str:
        """Hash: slug -> JSON of its facts and candidate states (the projection, one field per
        slug, so a batch writes back only the slugs it touched)."""
        return f"{self._repo(repo)}:projection-slugs"

    def projection_pushes(self, repo: str) -> str:
        """Hash: branch -> JSON of the `branch_pushed` facts of that branch."""
        return f"{self._repo(repo)}:projection-pushes"

    def snapshot(self, repo: str) -> str:
        """Hash: the repo's compaction snapshot: `point` (every log entry before it is in the
        snapshot), `at`, `freezes`; its facts in `snapshot_slugs` and `snapshot_pushes`."""
        return f"{self._repo(repo)}:snapshot"

    def snapshot_slugs(self, repo: str) -> str:
        """Hash: slug -> JSON of its facts, as of the snapshot's point."""
        return f"{self._repo(repo)}:snapshot-slugs"

    def snapshot_pushes(self, repo: str) -> str:
        """Hash: branch -> JSON of its `branch_pushed` facts, as of the snapshot's point."""
        return f"{self._repo(repo)}:snapshot-pushes"

    def projection_notes(self, repo: str) -> str:
        """List (newest first, capped): events the processor stored but ignored, and why."""
        return f"{self._repo(repo)}:projection-notes"

    def followups(self, repo: str) -> str:
        """Hash: follow-up id -> follow-up JSON (status, who claimed or resolved it, the block)."""
        return f"{self._repo(repo)}:followups"

    def followup_latest(self, repo: str) -> str:
        """Hash: slug -> id of its newest follow-up, so the next one links to it."""
        return f"{self._repo(repo)}:followup-latest"

    def notify_outbox(self, repo: str, sink: str) -> str:
        """Stream of deliveries waiting for one sink of a repo (its own consumer group, so a slow
        sink only delays itself)."""
        return f"{self._repo(repo)}:notify-outbox:{sink}"

    def notify_deliveries(self, repo: str) -> str:
        """Hash: `<sink key> <notification id>` -> delivery state JSON (queued, delivered,
        skipped, dead; attempts; last error): the per-(event, sink) dedupe record."""
        return f"{self._repo(repo)}:notify-deliveries"

    def notify_conversations(self, repo: str) -> str:
        """Hash: `<sink key> <slug>` -> the chat message a sink shows for the slug and its state."""
        return f"{self._repo(repo)}:notify-conversations"

    def checkpoint(self, repo: str, base: str) -> str:
        """Hash: what the last integrator of (repo, base) did before it released the lease."""
        return f"{self._repo(repo)}:checkpoint:{base}"

    def attempts(self, repo: str, base: str) -> str:
        """Hash: queue item id -> JSON of the integrator's current attempt (base sha, integration
        commit, outcome once decided). Written before anything is pushed, so the next lease
        holder can tell after a crash whether the commit already reached base."""
        return f"{self._repo(repo)}:attempts:{base}"

    def train(self, repo: str, base: str) -> str:
        """Hash: what the lease holder's train looks like now (`state`: JSON of the window and of
        each car with its members, parent, commit and checks; `check_seconds`: JSON list of recent
        check durations), for `status`, the queue API and the dashboard. A view, never a record:
        recovery reads the attempts."""
        return f"{self._repo(repo)}:train:{base}"

    def train_record(self, repo: str, base: str) -> str:
        """String: the lease holder's train as it stood before its latest step (JSON, written by
        `mergebot.integrator.record`): recovery continues a bisection from it."""
        return f"{self._repo(repo)}:train-record:{base}"

    def train_signals(self, repo: str) -> str:
        """Stream (capped): the processor's word that a candidate in the train changed (withdrawn,
        superseded, unapproved), so the lease holder re-checks it at once instead of polling."""
        return f"{self._repo(repo)}:train-signals"

    def flaky(self, repo: str) -> str:
        """Sorted set: one member per check that failed and then passed on the same commit
        (`<check>\x1f<sha>\x1f<at>`), scored by when; pruned past 30 days. Follow-ups and the
        dashboard count a check's flakes of the last 7 days from it."""
        return f"{self._repo(repo)}:flaky"

    def flaky_counts(self, repo: str) -> str:
        """Hash: check name -> how many times it failed and then passed on the same commit, ever
        (a counter for metrics: it only grows)."""
        return f"{self._repo(repo)}:flaky-counts"

    def followup_counters(self, repo: str) -> str:
        """Hash: `<slug>-integration-blocked-<sha7>` -> how many follow-ups got that id; the
        integrator adds `-2`, `-3`… from it (HINCRBY, so two blocks never share an id)."""
        return f"{self._repo(repo)}:followup-counters"

    def cutover(self, repo: str) -> str:
        """String: JSON of the repo's shadow record as last evaluated (parity, compared
        decisions, disagreements, when), which the live gate of every process reads."""
        return f"{self._repo(repo)}:cutover"

    # -- global --------------------------------------------------------------------------------
    def repos(self) -> str:
        """Set of every repo that ever had an event, so status and replay can enumerate them."""
        return f"{self.prefix}:repos"

    def refusals(self) -> str:
        """List of the most recent refused inputs (JSON, newest first, capped), so a refusal is
        visible after the fact and not only in a log line (SPEC §12)."""
        return f"{self.prefix}:refusals"

    def refusal_count(self) -> str:
        """Counter of every refusal ever recorded (the list above is capped)."""
        return f"{self.prefix}:refusal-count"

    def dead_letters(self) -> str:
        """Hash: dead letter id -> JSON (repo, sink, notification, attempts, last error, the job
        to retry). Notifications no sink would take after every attempt; never dropped silently."""
        return f"{self.prefix}:dead-letters"

    def notify_outboxes(self) -> str:
        """Set of `<repo> <sink key>` with an outbox, so every replica finds every sink worker."""
        return f"{self.prefix}:notify-outboxes"

    def deliveries(self) -> str:
        return f"{self.prefix}:deliveries"

    # -- GitHub input ----------------------------------------------------------------------------
    def review_rounds(self, repo: str) -> str:
        """Hash: `<slug> <reviewer> <approval id>` -> round, and `<slug> <reviewer>` -> count.
        Gives each GitHub approval its `review_round` once, stable across redeliveries."""
        return f"{self._repo(repo)}:review-rounds"

    def commands(self) -> str:
        """Stream of `/mergebot` comment commands waiting for the command worker (which needs a
        forge call, so they are never executed on the webhook's request path)."""
        return f"{self.prefix}:{{commands}}:stream"

    def command_ids(self) -> str:
        """Hash: command dedupe key (repo + comment id) -> stream entry id: one action per
        comment, whichever delivery or Actions job brought it."""
        return f"{self.prefix}:{{commands}}:ids"

    def command_attempts(self) -> str:
        """Hash: stream entry id -> how many times the worker tried it (bounded retries)."""
        return f"{self.prefix}:{{commands}}:attempts"
