"""Reads run dirs and sweep dirs from disk: runs, systems, tables, significance, plots, design statistics and the
report. No torch."""
