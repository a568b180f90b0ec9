"""GitHub in: verified webhooks, translation of GitHub events into canonical events, and the
`/mergebot …` comment commands (parsed on the request path, executed by a worker service)."""
