"""Reads run dirs and sweep dirs from disk, no torch: runs, systems, tables, significance, the Pareto front, plots,
design statistics, and the report (gathered in ``report``, rendered in ``render``, written in ``write``)."""
