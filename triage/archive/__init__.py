"""Scoring archives offline: one reader per format, one ordered resumable job, its executors."""
