"""One training job over two processes (DDP on CPU, gloo), launched with torchrun the way a user launches it."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, TINY_RUN
from sftlab import rundir
from sftlab.process import launch_time
from sftlab.training.parallel import data_parallel_note

# 2 ranks x per-device batch 2 x accumulation 2 = 8 sequences per step: 2 steps cover the 16 records exactly once.
DDP_RUN = [
    *TINY_RUN,
    "trainer.per_device_train_batch_size=2",
    "trainer.gradient_accumulation_steps=2",
    "trainer.max_steps=2",
    "trainer.eval_steps=2",
    "data.max_train_records=16",
    "eval.max_pairs_per_direction=1",
]
QUICK_LEARNING_RATE = 1e-3  # conf/trainer/quick.yaml
# What one process writes into its run dir (the Trainer makes checkpoints/ even when it saves none).
RUN_DIR_FILES = {
    *(".hydra", "train.log", rundir.ADAPTER, rundir.CHECKPOINTS),
    *(rundir.RUN, rundir.METRICS, rundir.PREDICTIONS, rundir.EVAL),
}


def torchrun(*args: str, cwd: Path, timeout: int = 150) -> subprocess.CompletedProcess | None:
    """``torchrun --standalone --nproc_per_node 2 -m sftlab.train args`` in ``cwd``, one thread per rank; None if
    the launch had not exited after ``timeout`` seconds (then every process of it is killed)."""
    launch = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + ["-m", "sftlab.train", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        stdout, stderr = launch.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # torchrun starts each rank in a session of its own: its process group holds the agent alone, and a rank
        # left behind would keep the pipes open. Every process of the launch works in ``cwd``, a dir of its own.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launch.pid, signal.SIGKILL)
        for process in psutil.process_iter(["cwd"]):
            if process.info["cwd"] == str(cwd):
                with contextlib.suppress(psutil.Error):
                    process.kill()
        launch.communicate()
        return None
    return subprocess.CompletedProcess(launch.args, launch.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A DDP run in a fresh working dir, so Hydra's default run dir (outputs/DATE/TIME) is the one under test."""
    # Launches of fresh-clone runs trained, evaluated and wrote every file, then rank 0 did not exit: its gloo group's
    # teardown hung (training.parallel.end_data_parallel now frees DDP's hold on the group first). Should a CPU gloo /
    # torchrun teardown hang again, it is told apart from a failure and gets one more launch; a second hang fails.
    for attempt in (1, 2):
        workdir = tmp_path_factory.mktemp("ddp")
        (workdir / "data").symlink_to(ROOT / "data")  # the configs name the bundled data relative to the working dir
        result = torchrun(*DDP_RUN, cwd=workdir)
        if result is not None:
            break
        warnings.warn(f"torchrun launch {attempt} did not exit within its time limit", stacklevel=1)
    assert result is not None, "torchrun did not exit, twice"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


def test_two_ranks_train_one_job_into_one_run_dir(ddp_run):
    workdir, result = ddp_run
    run_dirs = [path for path in (workdir / "outputs").glob("*/*") if path.is_dir()]
    assert len(run_dirs) == 1, run_dirs
    run_dir = run_dirs[0]

    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    assert metrics["world_size"] == 2 and metrics["effective_batch_size"] == 8 and metrics["steps"] == 2
    # Two steps of 8 sequences are one pass over the 16 records: the token count is every rank's, not rank 0's.
    assert metrics["train_tokens"] == metrics["train_split"]["tokens"]
    launch = json.loads((run_dir / rundir.RUN).read_text())["launch"]
    assert launch["world_size"] == 2 and launch["rank"] == 0
    assert json.loads((run_dir / rundir.EVAL).read_text())["counts"]["pairs"] == 4
    assert (run_dir / rundir.ADAPTER / "adapter_config.json").is_file()

    # Rank 0's files once each; rank 1 adds only its Hydra log (no .hydra/ of its own, no failure.json).
    assert {path.name for path in run_dir.iterdir()} == {*RUN_DIR_FILES, "train.rank1.log"}
    assert {path.name for path in (run_dir / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}

    output = result.stdout + result.stderr
    expected = data_parallel_note(2, 2, 2, QUICK_LEARNING_RATE, 2)
    assert output.count(expected) == 1, output[-3000:]
    assert output.count("objective chrf") == 1


def test_the_note_gives_the_effective_batch_and_the_linearly_scaled_rate():
    note = data_parallel_note(2, 2, 4, 2e-4, -1)
    assert "= effective batch 16 sequences per optimizer step (8 on one process)" in note
    assert "trainer.learning_rate=0.0002 is used as configured" in note
    assert "(trainer.learning_rate=0.0004)" in note and "an epoch takes 1/2 of the optimizer steps" in note


def test_a_launch_over_several_nodes_must_name_its_run_dir(monkeypatch):
    """Ranks on other nodes have other launchers, so no start time is shared: the user names the dir."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="hydra.run.dir="):
        launch_time("%H-%M-%S")
