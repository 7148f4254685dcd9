"""The one seam between sftlab and its Hydra plugins: what the sweeper and the launchers may use of sftlab.

The plugins import this package and nothing else of sftlab (an import-linter contract holds them to it), so the
rest of sftlab can change shape without breaking them: the run-dir contract, the objectives' directions, the
factorial designs a sweep enqueues, and the job side of a trial (``sftlab.sweep.trial``).
"""

from sftlab import rundir
from sftlab.designs import factorial as designs
from sftlab.errors import TrialPruned
from sftlab.objectives import direction as objective_direction
from sftlab.sweep import trial

__all__ = ["TrialPruned", "designs", "objective_direction", "rundir", "trial"]
