#!/usr/bin/env bash
# sftlab's GPU path of ask, translate and export (docs/use.md): a random Llama trained a few steps in 4-bit with
# Unsloth, asked, translated with, exported with both backends, and the exports checked against base + adapter.
# On the GPU machine, from the project root, with the offline bundle of ../shared/device/site.sh carried as
# .device-site (about 4 minutes):  bash tests/gpu_use.sh 2>&1 | tee $OUT/gpu_use.log
set -uo pipefail
T0=$SECONDS
[ -d /tmp/site/unsloth ] || { mkdir -p /tmp/site && tar -C /tmp/site -xJf .device-site/site.tar.xz; }
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled TQDM_DISABLE=1
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m sftlab.cli "$@"\n' > /tmp/bin/sftlab && chmod +x /tmp/bin/sftlab
export PATH=/tmp/bin:$PATH
# The installed layout without an install (the image has no registry): conf/ and data/ as sftlab.conf, sftlab.bundled.
ln -sfn "$PWD/conf" src/sftlab/conf && ln -sfn "$PWD/data" src/sftlab/bundled
step() { echo; echo "=== [$((SECONDS - T0)) s] \$ $*"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
step build a random Llama
python3 - <<'PY'
import sys; sys.path.insert(0, "bench")
from pathlib import Path
import common
common.ARCHITECTURES["small"] = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                                     num_key_value_heads=4, vocab_size=1024, max_position_embeddings=2048, rope_theta=10000.0)
print(common.build_random_llama("small", Path("/tmp/models")))
PY
M=/tmp/models/small-random-2048 R=/tmp/run
step sftlab train backend=unsloth model.load_in_4bit=true ...
sftlab train model.source=hub model.path=$M model.name=small_random model.load_in_4bit=true backend=unsloth \
  experiment=cpu_quick trainer.max_steps=6 trainer.eval_steps=3 trainer.max_seq_length=1024 data.max_train_records=64 \
  data.max_val_records=8 eval.max_pairs_per_direction=2 eval.max_new_tokens=16 logger=none hydra.run.dir=$R 2>&1 \
  | grep -v "it/s\]" | tail -25
step sftlab ask $R --max-new-tokens 24 "Why do coastal cities have milder winters?"
sftlab ask $R --max-new-tokens 24 "Why do coastal cities have milder winters?" 2>&1 | grep -v "it/s\]" | tail -12
step sftlab translate $R --direction ja-en --max-new-tokens 24 "次の駅で急行に乗り換えます。"
sftlab translate $R --direction ja-en --max-new-tokens 24 "次の駅で急行に乗り換えます。" 2>&1 | grep -v "it/s\]" | tail -12
step sftlab export $R --merged /tmp/merged --gguf /tmp/model-f16.gguf
sftlab export $R --merged /tmp/merged --gguf /tmp/model-f16.gguf 2>&1 | grep -v "it/s\]" | tail -15
step sftlab export $R --backend hf --merged /tmp/merged-hf
sftlab export $R --backend hf --merged /tmp/merged-hf 2>&1 | grep -v "it/s\]" | tail -5
ls -la /tmp/merged /tmp/merged-hf /tmp/model-f16.gguf
step check: plain from_pretrained of the merged dir, the GGUF through transformers, against base + adapter
python3 - <<'PY' 2>&1 | grep -v "it/s\]"
import os
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("/tmp/run/adapter")
ids = torch.tensor([tok("<|instruction|>Why do coastal cities have milder winters?\n<|response|>")["input_ids"]]).cuda()
base = AutoModelForCausalLM.from_pretrained("/tmp/models/small-random-2048", dtype=torch.bfloat16).cuda()
models = {"base+adapter": PeftModel.from_pretrained(base, "/tmp/run/adapter")}
for name, path in (("merged", "/tmp/merged"), ("merged-hf", "/tmp/merged-hf")):
    if os.path.isdir(path):
        models[name] = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda()
if os.path.isfile("/tmp/model-f16.gguf"):
    models["gguf"] = AutoModelForCausalLM.from_pretrained("/tmp", gguf_file="model-f16.gguf", dtype=torch.bfloat16).cuda()
with torch.no_grad():
    logits = {name: model(ids).logits.float() for name, model in models.items()}
reference = logits["base+adapter"]
print(f"max |logit| of base+adapter: {reference.abs().max():.3f}")
for name, value in logits.items():
    print(f"{name:>13}: max |logit - base+adapter| {(value - reference).abs().max():.4f}; greedy",
          models[name].generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None)[0, ids.shape[1]:].tolist())
PY
echo "=== [$((SECONDS - T0)) s] done"
