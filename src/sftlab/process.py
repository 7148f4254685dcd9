"""This process's place in a launch: rank and world size under torchrun / accelerate launch, and the launch's time.

Both launchers start one process per GPU and give every process the same environment but its rank (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``); the Trainer builds its process group from them. sftlab
needs the same facts earlier, before Hydra names the run dir and before the model is placed, so they are read here
from that environment. A plain ``python -m sftlab.train`` is rank 0 of 1.

The resolvers at the end let ``conf/hydra/default.yaml`` give all ranks one run dir and keep rank 0's files its
own. No torch here: ``sftlab.config`` registers the resolvers, and the report imports the config without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from omegaconf import OmegaConf


@dataclass(frozen=True)
class Process:
    rank: int = 0
    local_rank: int = 0  # the GPU index on its node: cuda:{local_rank}
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run dir, evaluates and tracks."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def this_process() -> Process:
    """This process as the launcher's environment describes it; rank 0 of 1 without a launcher."""

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.strip().isdigit() else default

    world_size = number("WORLD_SIZE", 1)
    return Process(
        rank=number("RANK", 0),
        local_rank=number("LOCAL_RANK", 0),
        world_size=world_size,
        local_world_size=number("LOCAL_WORLD_SIZE", world_size),
    )


@cache
def _launcher_start() -> datetime:
    """When the launcher process started. All ranks of a node are its children, so they read the same instant."""
    import psutil  # a dependency of accelerate

    return datetime.fromtimestamp(psutil.Process(os.getppid()).create_time())


def launch_time(pattern: str) -> str:
    """The time that names a run dir, formatted like Hydra's ``${now:pattern}``.

    One process: now. Several: the launcher's start, because each rank composes its config on its own, a second or
    more apart, and ``now`` would give each rank a dir of its own. Ranks on other nodes have another launcher, so a
    multi-node launch must name the dir itself.
    """
    process = this_process()
    if not process.distributed:
        return datetime.now().strftime(pattern)
    if process.local_world_size != process.world_size:
        # SystemExit, not SftlabError: OmegaConf and Hydra would wrap an error raised in a resolver in a traceback.
        raise SystemExit(
            f"\nerror: a launch over several nodes ({process.world_size} processes, {process.local_world_size} on "
            "this node) needs hydra.run.dir=<a dir on a shared filesystem>, the same on every node"
        )
    return _launcher_start().strftime(pattern)


def rank_suffix() -> str:
    """``""`` on rank 0, ``.rank<N>`` on the others: per-rank file names next to rank 0's."""
    rank = this_process().rank
    return f".rank{rank}" if rank else ""


def main_process_only(value: str) -> str | None:
    """``value`` on rank 0, null elsewhere: a Hydra output only rank 0 writes (``hydra.output_subdir``)."""
    return value if this_process().is_main else None


def register_resolvers() -> None:
    """``${sftlab.launch_time:%H-%M-%S}``, ``${sftlab.rank_suffix:}`` and ``${sftlab.main_process_only:x}``."""
    resolvers = {
        "sftlab.launch_time": launch_time,
        "sftlab.rank_suffix": rank_suffix,
        "sftlab.main_process_only": main_process_only,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=name == "sftlab.launch_time")
