#!/usr/bin/env bash
# Installs Debian's SLURM daemons, client and munge for the test that runs sweeps through a real one-node SLURM
# cluster (tests/helpers/slurm_cluster.py), unless they are already there. Never fails: without root or apt that test is
# skipped instead.
set -uo pipefail

if command -v sbatch >/dev/null && command -v munged >/dev/null && command -v slurmd >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null; then
    exit 0
fi
echo "install-slurm: could not install Debian's SLURM packages (needs root and apt-get); the SLURM test will be skipped."
