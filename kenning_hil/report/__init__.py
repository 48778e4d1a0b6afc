"""Artifacts of a HIL run: per-test rows, the terminal summary table, the session Markdown
report, and figures for HTML reports. Plain functions over plain data, so they work in the
pytest controller process from values the workers recorded."""
