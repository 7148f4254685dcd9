"""The Pareto front of a multi-objective multirun: the runs that no other run beats on every objective.

The report computes the front itself from the job dirs rather than reading the sweeper's ``pareto_front.csv``: it
reports any multirun (Hydra's basic sweeper, a hand-made grid, a sweep resumed after the sweeper last wrote its
files), and the job dirs are what every run really recorded. It is a few lines of numpy: every pair of runs is
compared, which is cheap for the hundreds of runs a multirun holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_front(values: pd.DataFrame, directions: list[str]) -> pd.Series:
    """True for each row no other row dominates; ``directions`` gives each column's ``maximize`` or ``minimize``.

    A row dominates another when it is at least as good on every objective and better on one. A row lacking a
    value (NaN) is never on the front, and does not dominate either.
    """
    signs = np.array([-1.0 if direction == "maximize" else 1.0 for direction in directions])
    losses = values.to_numpy(dtype=float) * signs  # every objective minimised
    complete = ~np.isnan(losses).any(axis=1)
    points = losses[complete]
    # at_least_as_good[i, j]: run j is at least as good as run i on every objective; better: strictly on one.
    at_least_as_good = (points[None, :, :] <= points[:, None, :]).all(axis=2)
    better = (points[None, :, :] < points[:, None, :]).any(axis=2)
    front = np.zeros(len(values), dtype=bool)
    front[complete] = ~(at_least_as_good & better).any(axis=1)
    return pd.Series(front, index=values.index, name="pareto_front")
