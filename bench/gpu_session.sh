#!/usr/bin/env bash
# The GPU machine's measurements for issue 21, in stages, from the project root (results and logs under $OUT):
#   bash bench/gpu_session.sh setup tests tiny gen     # first call: unpack the bundle, GPU tests, TinyLlama, generation
#   bash bench/gpu_session.sh setup train8b           # second call (setup is a no-op on a warm machine); PATHS=, STEPS=
#     (comparing bundled-data variants: STEPS=47; one configuration spread 4-8% over 15-25 steps, under 1% over 47)
#   bash bench/gpu_session.sh setup holders           # what a sweep holds between trials (docs/benchmarks.md)
# Needs .device-site carried (../shared/device/site.sh builds it). Output goes through tee into $OUT, never through
# tail: a stage stopped at the call's limit then still returns what it printed (2026-11-29 lost a whole stage so).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 SFTLAB_CACHE=/tmp/sftlab-cache
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for stage in "$@"; do
  started=$(date +%s)
  case $stage in
    setup)
      [ -d /tmp/site/unsloth ] || { mkdir -p /tmp/site && tar -C /tmp/site -xJf .device-site/site.tar.xz; }
      # what an install maps (pyproject's package-dir): conf/ is sftlab.conf, data/ is sftlab.bundled
      ln -sfn "$PWD/conf" src/sftlab/conf && ln -sfn "$PWD/data" src/sftlab/bundled
      python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'
      ;;
    tests)  # the single-GPU tests, while the benchmark models are written to disk
      python3 -c 'import sys; sys.path.insert(0, "bench"); from pathlib import Path; from common import build_random_llama as b
for name in ("tinyllama", "llama3_8b"): b(name, Path("/tmp/sftlab-bench"))' > "$OUT/build.log" 2>&1 &
      builder=$!
      python3 -m pytest -m gpu -q tests/test_gpu.py -k "not ddp" -p no:cacheprovider 2>&1 | tail -n 25 | tee "$OUT/gpu_tests.log"
      wait $builder
      ;;
    tiny)  # issue 21 item 3: TinyLlama, sftlab vs raw Unsloth at 2 x 2048 as on 2026-11-26
      python3 bench/train_throughput.py --models tinyllama --paths unsloth sftlab --steps 10 --batch 2 --effective 2 \
        --json "$OUT/tiny.json" 2>&1 | grep --line-buffered -v "it/s]" | tee "$OUT/tiny.log"
      ;;
    gen)
      python3 bench/generation_throughput.py --model llama3_8b --prompts 180 --batch 32 --max-new-tokens 96 ${GEN_ARGS:-} \
        --json "$OUT/gen.json" 2>&1 | grep --line-buffered -v "it/s]\|batch/s]" | tee "$OUT/gen.log"
      ;;
    holders)  # what a sweep holds between trials: a 4-trial TinyLlama sweep over lengths, held_by in the JSON
      python3 bench/train_throughput.py --models tinyllama --paths autotune-sweep --steps 3 --json "$OUT/holders.json" \
        2>&1 | grep --line-buffered -v "it/s]" | tee "$OUT/holders.log"
      python3 -c 'import json, sys; sweep = json.load(open(sys.argv[1]))["sweeps"]["tinyllama autotune-sweep"]
for trial in sweep["trials"]: print(trial["job"], json.dumps((trial["left_after"] or {}).get("held_by"), indent=1))' \
        "$OUT/holders.json"
      ;;
    train8b)
      python3 bench/train_throughput.py --models llama3_8b --steps ${STEPS:-5} --batch 2 --effective 8 --json "$OUT/train8b.json" \
        --paths ${PATHS:-unsloth sftlab sftlab-autotune bundled-grouped bundled-autotune autotune-sweep} 2>&1 \
        | grep --line-buffered -v "it/s]" | tee "$OUT/train8b.log"
      ;;
  esac
  echo "[session] $stage: $(( $(date +%s) - started )) s"
done
