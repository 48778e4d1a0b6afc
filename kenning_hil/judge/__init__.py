"""Judging results: metric names and units, thresholds, baselines, agreement between runtimes."""
