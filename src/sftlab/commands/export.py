"""``sftlab export RUN_DIR``: a trained run as a model that loads without sftlab.

    sftlab export RUN_DIR --merged merged/                                # 16-bit safetensors + tokenizer
    sftlab export RUN_DIR --gguf model-f16.gguf                           # GGUF for llama.cpp (Llama family)
    sftlab export RUN_DIR --merged merged/ --gguf model-q8_0.gguf --gguf-type q8_0
    sftlab export RUN_DIR --merged merged/ --push-to-hub you/my-model     # and upload it (network and a token)

``--merged`` merges the adapter into the base model in 16-bit: ``AutoModelForCausalLM.from_pretrained(DIR)`` loads
it. A 4-bit base is merged into its unquantized weights, never into quantized ones: with the Unsloth backend (the
run's, on a GPU) by Unsloth's merged save, otherwise (or with ``--backend hf``) by transformers + PEFT in ``--dtype``.
``--gguf`` writes the merged model as GGUF (F16 or Q8_0) through the gguf package; without ``--merged`` the merge
goes to a temporary dir. The run dir itself is left as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sftlab import rundir
from sftlab.commands import builders
from sftlab.commands.ask import run_config
from sftlab.config import Backend, ModelSource
from sftlab.errors import SftlabError
from sftlab.models import export
from sftlab.models.loading import model_path
from sftlab.process import this_process

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sftlab export",
        description="Merge a trained run's adapter into its base model; write safetensors, GGUF, or push to the Hub.",
        epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a trained run dir (holds .hydra/ and adapter/)")
    parser.add_argument("--merged", type=Path, metavar="DIR", help="write the merged 16-bit model here (a new dir)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="the merged weights' type")
    parser.add_argument("--gguf", type=Path, metavar="FILE", help="write a GGUF file (Llama-family models)")
    parser.add_argument("--gguf-type", choices=export.GGUF_TYPES, default="f16", help="GGUF tensor type")
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the merged model (and GGUF) to this Hub repo")
    parser.add_argument("--backend", choices=[b.value for b in Backend], help="default: the run's backend")
    args = parser.parse_args(argv)
    if not (args.merged or args.gguf or args.push_to_hub):
        parser.error("say what to export: --merged DIR, --gguf FILE and/or --push-to-hub REPO")
    return args


def export_run(args: argparse.Namespace) -> None:
    cfg = run_config(args.run_dir, args.backend)
    base_path = model_path(cfg.model, cfg.cache_dir)
    if args.gguf is not None and Path(base_path).is_dir():
        export.check_gguf_architecture(base_path)  # before any weights load
    if args.merged is not None and args.merged.exists() and any(args.merged.iterdir()):
        raise SftlabError(f"--merged {args.merged} exists and is not empty; name a new dir")
    adapter_dir = args.run_dir / rundir.ADAPTER
    run = builders.runtime(cfg, this_process())  # first: Unsloth patches transformers before it loads
    target = args.merged or export.scratch_dir()
    try:
        trust = cfg.model.trust_remote_code
        if run.backend == Backend.unsloth:
            max_length = cfg.trainer.max_seq_length
            export.merge_with_unsloth(adapter_dir, target, max_length, cfg.model.load_in_4bit, trust)
        else:
            export.merge_adapter(base_path, adapter_dir, target, DTYPES[args.dtype], trust)
        if args.merged is not None:
            print(f"merged model: {target}")
        if args.gguf is not None:
            embedded = cfg.model.source == ModelSource.embedded
            pre_tokenizer = export.embedded_pre_tokenizer(cfg.model.path) if embedded else None
            export.write_gguf(target, args.gguf, args.gguf_type, pre_tokenizer)
            print(f"GGUF ({args.gguf_type}): {args.gguf} ({args.gguf.stat().st_size / 2**20:.1f} MiB)")
        if args.push_to_hub:
            print(f"pushed: {export.push_to_hub(args.push_to_hub, target, args.gguf)}")
    finally:
        if args.merged is None:
            export.remove(target)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        export_run(args)
    except SftlabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        return 130
    return 0
