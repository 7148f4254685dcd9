"""How a Hydra entry point ends: one clear line for a user's mistake, a recorded failure inside a sweep.

In a single run a ``SftlabError`` prints ``error: <message>`` and exits 1, without a traceback. In a multirun the
job writes ``failure.json`` into its run dir and returns ``None``, so the sweep records the trial as failed and goes
on; an interrupt (Ctrl-C) still stops the whole sweep. Under a DDP launch only rank 0 writes ``failure.json``, like
every other file of the run dir.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from sftlab import rundir
from sftlab.errors import SftlabError, TrainingFault
from sftlab.process import this_process


def _record_failure(run_dir: Path, error: BaseException) -> None:
    if not this_process().is_main:
        return
    rundir.write_json(
        run_dir / rundir.FAILURE,
        {
            "type": type(error).__name__,
            "message": str(error) or type(error).__name__,
            "user_error": isinstance(error, SftlabError),
            "traceback": None if isinstance(error, SftlabError) else traceback.format_exc(),
        },
    )


def entry_point(task: Callable[[Any, Path], float | None]) -> Callable[[Any], float | None]:
    """Wrap ``task(cfg, run_dir)`` with the failure policy above."""

    @functools.wraps(task)
    def run(cfg: Any) -> float | None:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
        try:
            return task(cfg, run_dir)
        except KeyboardInterrupt as error:
            _record_failure(run_dir, error)
            raise
        except SftlabError as error:
            _record_failure(run_dir, error)
            if in_sweep:
                print(f"[sftlab] job {hydra_cfg.job.num} failed: {error}", file=sys.stderr)
                if isinstance(error, TrainingFault) and error.interrupted:
                    raise KeyboardInterrupt from None
                return None
            raise SystemExit(f"\nerror: {error}") from None  # on its own line, after any progress bar
        except Exception as error:  # a bug: keep the traceback, but do not lose the rest of a sweep
            _record_failure(run_dir, error)
            if not in_sweep:
                raise
            traceback.print_exc()
            print(f"[sftlab] job {hydra_cfg.job.num} failed: {type(error).__name__}: {error}", file=sys.stderr)
            return None

    return run
