"""git adapters: the per-repo mirror, worktrees and merges (GitPython over the system git)."""
