"""Chat notifications: what happened to a candidate, delivered at least once to each sink.

`notification` turns log entries and queue changes into notifications (pure), `conversation`
decides whether a sink's message is posted or edited (pure), `view` builds template contexts
(pure), `sinks` talk to Slack, Discord, Telegram, webhooks and the log, and `delivery` runs the
consumer groups, per-sink outboxes, retries and dead letters.
"""
