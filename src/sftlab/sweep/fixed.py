"""Fixed trials: parameter sets a sweep enqueues and runs once each, instead of asking its sampler.

A factorial design (``hydra.sweeper.design``, ``conf/design/*.yaml``) is the one source of them today: each row
crossed with each seed is one fixed trial. The sweeper gets them here as plain dicts and knows nothing of designs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.designs import factorial


@dataclass
class FixedTrials:
    params: list[dict[str, Any]]  # one dict per trial: override key -> value
    notes: list[str] = field(default_factory=list)  # what the sweeper logs about them


def design_trials(spec: dict[str, Any], default_seed: int, sweep_dir: Path) -> FixedTrials:
    """The fixed trials of a design spec (``ValueError`` for a design that cannot be built); writes the design, its
    aliasing and its points to ``<sweep dir>/design.json`` for the analysis."""
    design = factorial.build(spec)
    seeds = factorial.seeds_of(spec, default_seed)
    factorial.write(design, seeds, sweep_dir)
    return FixedTrials(design.points(seeds), design.describe()[:4])
