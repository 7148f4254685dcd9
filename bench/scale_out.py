"""Scale-out on a multi-GPU host: a sweep's trials on 1 vs. 2 GPUs, and one DDP training run on 1 vs. 2 GPUs.

    python bench/scale_out.py sweep --trials 4 --steps 40 --write docs/benchmarks.md
    python bench/scale_out.py ddp --steps 30 --write docs/benchmarks.md
    python bench/scale_out.py ddp --steps 30 --launcher accelerate --write docs/benchmarks.md

``sweep``: ``python -m sftlab.train -m`` with ``hydra/launcher=gpus``, a grid of ``--trials`` seeds (every trial the
same work: Llama-3-8B QLoRA r=16, batch 2 x 2048, ``--steps`` steps, no evaluation), once with
``hydra.launcher.gpus=[0]`` and once with ``[0,1]``; the wall time of each whole sweep process, and each trial's
start and end from the Optuna study, to show which ran at once. Goal: 2 GPUs take <= 0.55 x the time of 1.

``ddp``: ``torchrun --standalone --nproc_per_node N -m sftlab.train`` (or, with ``--launcher accelerate``, the
README's ``accelerate launch --num_processes N -m sftlab.train``) for N = 1 and 2, the same shapes per GPU; the
steady tokens/s of all ranks together (metrics.json). Goal: 2 GPUs >= 1.8 x 1 GPU.

Both build the Llama-3-8B architecture with random weights on local disk first (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, emit_table, long_records, sftlab_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH, LENGTH = 2, 2048


def run(command: list[str], timeout: int, env: dict[str, str] | None = None) -> tuple[int, float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-5000:])
    return result.returncode, wall, result.stderr


def trial_spans(sweep_dir: Path) -> list[tuple[int, str, float, float]]:
    """(number, state, start, end) of each trial as the sweeper saw it (ask to tell), seconds from the first start."""
    import optuna

    study = optuna.load_study(study_name="scale_out", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    origin = min(t.datetime_start for t in trials)
    return [
        (
            t.number,
            t.state.name,
            (t.datetime_start - origin).total_seconds(),
            (t.datetime_complete - origin).total_seconds(),
        )
        for t in trials
    ]


def trial_training(sweep_dir: Path) -> dict[int, tuple[float, float]]:
    """Trial number -> (seconds in trainer.train(), steady tokens/s) from each job's metrics.json."""
    found = {}
    for metrics_file in sweep_dir.glob("*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        found[int(metrics_file.parent.name)] = (metrics["train_runtime_s"], metrics["steady_tokens_per_second"] or 0.0)
    return found


def steady_ratio(one: list, two: list) -> float | None:
    """Seconds per trial after the first batch, 2 GPUs over 1 GPU: the ratio a long sweep tends to."""
    later_one = [end - start for number, _, start, end in one if number > 0]
    first_end = max((end for number, _, _, end in two if number < 2), default=None)
    later_two = [end for number, _, _, end in two if number >= 2]
    if not later_one or first_end is None or not later_two:
        return None
    return ((max(later_two) - first_end) / len(later_two)) / (sum(later_one) / len(later_one))


def sweep(args: argparse.Namespace, model_dir: str, train_files: str) -> list[str]:
    seeds = ",".join(str(seed) for seed in range(1, args.trials + 1))
    setups = [("1", "[0]", []), ("2", "[0,1]", [])]
    if args.unshared_cpus:
        setups.append(("2, CPUs not shared", "[0,1]", ["hydra.launcher.share_cpus=false"]))
    results = {}
    for label, gpus, extra in setups:
        sweep_dir = args.work / f"sweep-{len(results)}"
        shutil.rmtree(sweep_dir, ignore_errors=True)  # a sweep dir left by an earlier run would resume its study
        command = [
            sys.executable,
            "-m",
            "sftlab.train",
            "-m",
            "hydra/sweeper=sftlab_optuna",
            "hydra.sweeper.study_name=scale_out",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.pruner=null",
            f"hydra.sweeper.n_trials={args.trials}",
            "hydra/launcher=gpus",
            f"hydra.launcher.gpus={gpus}",
            *extra,
            f"hydra.sweep.dir={sweep_dir}",
            *sftlab_overrides(model_dir, train_files, BATCH, LENGTH, args.steps),
            "lora.r=16",
            f"seed=choice({seeds})",
        ]
        # Each sweep compiles from scratch (Unsloth's compiled blocks, Triton kernels): a cache warmed by the sweep
        # before would spare the next one its first trial's compilation.
        cold = {"TORCHINDUCTOR_CACHE_DIR": str(sweep_dir / "inductor"), "TRITON_CACHE_DIR": str(sweep_dir / "triton")}
        code, wall, _ = run(command, timeout=1800, env=cold)
        spans = trial_spans(sweep_dir) if (sweep_dir / "optuna.db").is_file() else []
        training = trial_training(sweep_dir)
        results[label] = (code, wall, spans, training)
        print(
            f"[bench] sweep on {label} GPUs: exit {code}, {wall:.0f} s, trials {spans}, training {training}", flush=True
        )

    lines = [
        f"### Sweep trials on 1 vs. 2 GPUs, {args.device} ({time.strftime('%Y-%m-%d')})",
        "",
        f"{args.trials} trials (a grid of seeds, every trial the same work): Llama-3-8B architecture, random weights, "
        f"QLoRA r=16, batch {BATCH} x {LENGTH}, {args.steps} steps, no evaluation; `hydra/launcher=gpus`. Wall time "
        "of the whole `python -m sftlab.train -m` process, start-up included; each GPU has one worker process that "
        "keeps the base model between its trials, and each sweep starts with empty compile caches. A trial's span "
        "runs from the sweeper's ask to its tell; its "
        "training time is `trainer.train()` alone, and its tokens/s skip the first 3 steps.",
        "",
        "| GPUs | exit | wall s | trials (start-end s) | training s per trial | steady tokens/s per trial |",
        "|---|---:|---:|---|---|---|",
    ]
    for label, (code, wall, spans, training) in results.items():
        shown = ", ".join(
            f"#{n} {start:.0f}-{end:.0f}" + ("" if state == "COMPLETE" else f" {state}")
            for n, state, start, end in spans
        )
        seconds = ", ".join(f"{training[n][0]:.0f}" for n in sorted(training))
        rates = ", ".join(f"{training[n][1]:,.0f}" for n in sorted(training))
        lines.append(f"| {label} | {code} | {wall:.0f} | {shown} | {seconds} | {rates} |")
    one, two = results["1"], results["2"]
    if one[0] == 0 and two[0] == 0:
        lines += ["", f"2 GPUs / 1 GPU wall time: **{two[1] / one[1]:.2f}** (goal <= 0.55)."]
        steady = steady_ratio(one[2], two[2])
        if steady is not None:
            lines.append(
                f"After the first batch (imports, Unsloth's patching and the first model load, paid once per worker), "
                f"time per trial on 2 GPUs / on 1 GPU: **{steady:.2f}**."
            )
    return lines


LAUNCHERS = {
    "torchrun": (
        "torchrun --standalone --nproc_per_node N",
        ["torch.distributed.run", "--standalone", "--nproc_per_node"],
    ),
    "accelerate": ("accelerate launch --num_processes N", ["accelerate.commands.launch", "--num_processes"]),
}


def ddp(args: argparse.Namespace, model_dir: str, train_files: str) -> list[str]:
    shown_launcher, launcher = LAUNCHERS[args.launcher]
    results = {}
    for nproc in (1, 2):
        run_dir = args.work / f"ddp-{args.launcher}-{nproc}gpu"
        shutil.rmtree(run_dir, ignore_errors=True)
        command = [
            sys.executable,
            "-m",
            *launcher,
            str(nproc),
            "-m",
            "sftlab.train",
            *sftlab_overrides(model_dir, train_files, BATCH, LENGTH, args.steps),
            f"hydra.run.dir={run_dir}",
        ]
        code, wall, _ = run(command, timeout=900)
        metrics_file = run_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if code == 0 and metrics_file.is_file() else {}
        results[nproc] = (code, wall, metrics)
        print(
            f"[bench] ddp {args.launcher} nproc={nproc}: exit {code}, {wall:.0f} s, {json.dumps(metrics)[:600]}",
            flush=True,
        )

    lines = [
        f"### One training run with DDP on 1 vs. 2 GPUs, {args.device} ({time.strftime('%Y-%m-%d')})",
        "",
        f"`{shown_launcher} -m sftlab.train`: Llama-3-8B architecture, random weights, Unsloth "
        f"QLoRA r=16, per-GPU batch {BATCH} x {LENGTH}, gradient checkpointing, {args.steps} steps; tokens/s of all "
        "ranks together, steady state (first 3 steps skipped).",
        "",
        "| GPUs | exit | tokens/s | peak GiB (rank 0) | wall s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for nproc, (code, wall, metrics) in results.items():
        tps = metrics.get("steady_tokens_per_second")
        peak = metrics.get("peak_memory_gib")
        lines.append(
            f"| {nproc} | {code} | {f'{tps:,.0f}' if tps else ''} | {f'{peak:.1f}' if peak else ''} | {wall:.0f} |"
        )
    one, two = (results[n][2].get("steady_tokens_per_second") for n in (1, 2))
    if one and two:
        lines += ["", f"2 GPUs / 1 GPU tokens/s: **{two / one:.2f}** (goal >= 1.8)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["sweep", "ddp"])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--unshared-cpus", action="store_true", help="also run 2 GPUs with hydra.launcher.share_cpus=false"
    )
    parser.add_argument("--launcher", choices=sorted(LAUNCHERS), default="torchrun", help="ddp: what starts the ranks")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()

    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    args.device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
    model_dir = str(build_random_llama("llama3_8b", args.work))
    records = long_records(args.work / "scale_records.jsonl", (args.steps + 4) * BATCH * 2 + 8, LENGTH * 2)
    lines = (sweep if args.what == "sweep" else ddp)(args, model_dir, f"[{records}]")
    lines += ["", f"Command: `python bench/scale_out.py {' '.join(sys.argv[1:])}`", ""]
    emit_table(lines, args.write)


if __name__ == "__main__":
    main()
