"""mergebot: a merge queue that is the only writer of the base branch."""

__version__ = "0.1.0"
