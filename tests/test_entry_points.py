"""The entry points' failure policy (sftlab.commands.job), run as a user runs it: a failure is one line, a resumed
run that succeeds loses its stale failure.json, and Ctrl-C during start-up is one line and exit status 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, TINY_RUN, takes_ctrl_c
from sftlab import rundir

JOB_APP = ROOT / "tests" / "apps" / "job_app.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ}
    )


def test_a_failure_is_one_line_and_a_successful_rerun_removes_its_failure_json(tmp_path):
    failed = run(str(JOB_APP), f"hydra.run.dir={tmp_path}", "+fail=true")
    assert failed.returncode == 1 and failed.stderr.strip().splitlines()[-1] == "error: told to fail"
    assert "Traceback" not in failed.stderr
    assert rundir.read_record(tmp_path, rundir.Failure).message == "told to fail"

    resumed = run(str(JOB_APP), f"hydra.run.dir={tmp_path}")
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / rundir.FAILURE).exists()  # the report now counts the run as finished


def interrupt_when(command: list[str], ready: Path) -> subprocess.CompletedProcess:
    """Start ``command``, send it SIGINT (Ctrl-C) once ``ready`` exists, and wait for it."""
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=takes_ctrl_c
    )
    deadline = time.monotonic() + 120
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_ctrl_c_in_a_task_is_one_line_and_exit_130(tmp_path):
    result = interrupt_when(
        [sys.executable, str(JOB_APP), f"hydra.run.dir={tmp_path}", "+sleep=60"], tmp_path / "started"
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "interrupted (Ctrl-C)" and "Traceback" not in result.stderr
    assert rundir.read_record(tmp_path, rundir.Failure).type == "KeyboardInterrupt"


def test_ctrl_c_while_sftlab_train_starts_is_one_line_and_exit_130(tmp_path):
    """Interrupted as soon as Hydra has written the job's config: the task is importing and loading."""
    command = [sys.executable, "-m", "sftlab.train", *TINY_RUN, f"hydra.run.dir={tmp_path}"]
    result = interrupt_when(command, tmp_path / rundir.HYDRA_CONFIG)
    # Inside the task the entry point exits 130; before it, Python ends as killed by SIGINT, which a shell shows as 130.
    assert result.returncode in (130, -signal.SIGINT), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "interrupted" in result.stderr.strip().splitlines()[-1]
