"""Callers' personal data: sealed in the log under per-subject data keys, erasable."""
