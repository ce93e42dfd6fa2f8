"""Scheduled jobs: declared as data here, run by `broker scheduler` (its own
process) or in-process by `broker run`. Web processes never start a scheduler."""
