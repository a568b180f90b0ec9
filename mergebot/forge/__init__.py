"""Forges: where mergebot reads CI results, permissions and config, and reports back."""
