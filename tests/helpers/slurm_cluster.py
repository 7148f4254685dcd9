"""A throwaway one-node SLURM cluster for tests, from Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and
``munge`` packages (``scripts/install-slurm.sh``).

The SLURM launcher is only worth testing against a real scheduler, so this starts a private one: its own munge
daemon and key, controller and node daemon on free ports, with state, spool and logs in a temp dir, and two "GPUs"
declared as generic resources. SLURM hands a job its GPUs as ``CUDA_VISIBLE_DEVICES``, counted from the device files
of ``gres.conf``; the files here are character devices with ``/dev/null``'s numbers, so no GPU is needed. No
accounting database: ``sacct`` answers that accounting is disabled, and submitit then learns that a job ended only from
its result file, so a job whose process dies is not seen to end (a real cluster's ``slurmdbd`` reports it).
Needs root (the daemons, ``mknod``); skips with the reason where it cannot start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_TIMEOUT_S = 30.0
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _find(program: str) -> str | None:
    return shutil.which(program) or next(
        (str(path) for path in (Path("/usr/sbin") / program, Path("/sbin") / program) if path.is_file()), None
    )


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(no output)"


def slurm_conf(work: Path, host: str, gpus: int, cpus: int) -> str:
    return f"""\
ClusterName=sftlab-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={work / "munge.socket"}
StateSaveLocation={work / "state"}
SlurmdSpoolDir={work / "spool"}
SlurmctldPidFile={work / "slurmctld.pid"}
SlurmdPidFile={work / "slurmd.pid"}
SlurmctldLogFile={work / "slurmctld.log"}
SlurmdLogFile={work / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 Gres=gpu:{gpus} State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextmanager
def slurm_cluster(gpus: int = 2) -> Iterator[dict[str, str]]:
    """Run a private one-node SLURM cluster with ``gpus`` GPUs and yield the environment that points its clients
    (``sbatch``, ``squeue``, ...) at it (``SLURM_CONF``). Its daemons are our children, stopped on exit."""
    missing = [program for program in DAEMONS if _find(program) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} not found): scripts/install-slurm.sh installs it")
    if os.geteuid() != 0:
        pytest.skip("the test SLURM cluster's daemons and device files need root")
    work = Path(tempfile.mkdtemp(prefix="slurm-"))
    daemons: list[subprocess.Popen] = []
    try:
        for name in ("state", "spool"):
            (work / name).mkdir()
        key = work / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        daemons.append(
            subprocess.Popen(
                [_find("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={work / 'munge.socket'}",
                 f"--pid-file={work / 'munged.pid'}", f"--seed-file={work / 'munged.seed'}",
                 f"--log-file={work / 'munged.log'}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        gres_lines = []
        for index in range(gpus):
            device = work / f"gpu{index}"
            os.mknod(device, 0o600 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
            gres_lines.append(f"Name=gpu File={device}")
        host = socket.gethostname().split(".")[0]
        conf = work / "slurm.conf"
        conf.write_text(slurm_conf(work, host, gpus, cpus=max(gpus, os.cpu_count() or 1)))
        (work / "gres.conf").write_text("\n".join(gres_lines) + "\n")
        env = {**os.environ, "SLURM_CONF": str(conf)}
        for daemon in ("slurmctld", "slurmd"):
            daemons.append(
                subprocess.Popen(
                    [_find(daemon), "-D", "-f", str(conf)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            state = subprocess.run(
                [_find("sinfo"), "--noheader", "--format=%T"], env=env, capture_output=True, text=True, check=False
            ).stdout.strip()
            if state == "idle":
                break
            if time.monotonic() > deadline or any(daemon.poll() is not None for daemon in daemons):
                pytest.skip(
                    f"the test SLURM cluster did not start (node state {state or 'unknown'!r}): "
                    f"slurmctld: {_tail(work / 'slurmctld.log')}; slurmd: {_tail(work / 'slurmd.log')}"
                )
            time.sleep(0.3)
        yield {"SLURM_CONF": str(conf)}
    finally:
        for daemon in reversed(daemons):
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
        shutil.rmtree(work, ignore_errors=True)
