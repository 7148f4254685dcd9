"""The CUDA paths: Unsloth (4-bit QLoRA, training, inference mode) and transformers + PEFT + bitsandbytes.

Skipped without a CUDA GPU; run them on the GPU machine with ``pytest -m gpu``.
"""

import json

import pytest

from conftest import ROOT, TINY_RUN, run_module
from sftlab import rundir

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the GPU machine)"),
]

# A small Llama with the usual head size (64) that bitsandbytes and Unsloth's kernels expect.
GPU_MODEL = [
    "model.tiny.hidden_size=512",
    "model.tiny.intermediate_size=1024",
    "model.tiny.num_attention_heads=8",
    "model.tiny.num_key_value_heads=4",
    "model.load_in_4bit=true",
]


@pytest.mark.parametrize("backend", ["unsloth", "hf"])
def test_qlora_run_on_gpu(tmp_path, backend):
    if backend == "unsloth":
        pytest.importorskip("unsloth")
    result = run_module(
        "sftlab.train",
        *TINY_RUN,
        *GPU_MODEL,
        f"backend={backend}",
        "trainer.autotune=false",  # the batch and checkpointing as configured; the autotuned run is the next test
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((tmp_path / rundir.METRICS).read_text())
    assert metrics["backend"] == backend and metrics["precision"] in ("bf16", "fp16")
    assert metrics["peak_memory_kind"] == "cuda_allocated" and metrics["steps"] == 4
    assert (tmp_path / rundir.ADAPTER / "adapter_config.json").is_file()
    scores = json.loads((tmp_path / rundir.EVAL).read_text())
    assert scores["counts"]["pairs"] == 8
    assert scores["generation"]["decoder"] == "static"  # the 4-bit weights dequantized, the adapter kept apart


def test_autotuned_run_on_unsloth(tmp_path):
    """trainer.autotune (on by default) on the GPU: a plan at the same per-device batch x accumulation, said in both
    records."""
    pytest.importorskip("unsloth")
    result = run_module(
        "sftlab.train",
        *TINY_RUN,
        *GPU_MODEL,
        "backend=unsloth",
        "trainer.per_device_train_batch_size=1",
        "trainer.gradient_accumulation_steps=4",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "trainer.autotune: batch" in result.stdout
    plan = json.loads((tmp_path / rundir.METRICS).read_text())["memory_plan"]
    assert plan["per_device_train_batch_size"] * plan["gradient_accumulation_steps"] == 4
    assert plan["checkpointing"] in ("off", "on", "offload") and plan["failed"] == []
    assert json.loads((tmp_path / rundir.RUN).read_text())["memory_plan"]["checkpointing"] == plan["checkpointing"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
@pytest.mark.parametrize("backend", ["unsloth", "hf"])
def test_ddp_run_over_two_gpus(tmp_path, backend):
    """``torchrun`` over two GPUs, each rank on its own (``cuda:LOCAL_RANK``): one job, rank 0 writes and evaluates."""
    from test_ddp import DDP_RUN, torchrun

    if backend == "unsloth":
        pytest.importorskip("unsloth")
    result = torchrun(*DDP_RUN, *GPU_MODEL, f"backend={backend}", f"hydra.run.dir={tmp_path}", cwd=ROOT, timeout=300)
    assert result is not None, "torchrun did not exit within 300 s"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((tmp_path / rundir.METRICS).read_text())
    assert metrics["backend"] == backend and metrics["world_size"] == 2 and metrics["effective_batch_size"] == 8
    assert metrics["peak_memory_kind"] == "cuda_allocated" and metrics["steps"] == 2
    assert (tmp_path / "train.rank1.log").is_file() and (tmp_path / rundir.ADAPTER / "adapter_config.json").is_file()
    assert json.loads((tmp_path / rundir.EVAL).read_text())["counts"]["pairs"] == 4


def test_static_decoder_computes_an_unsloth_adapter_as_unsloth_does(cache_dir):
    """Unsloth computes a LoRA update in the compute dtype, accumulated into the product (its kernels, in training
    and in its inference path); the static decoder's layers give the very values of Unsloth's ``matmul_lora``, where
    PEFT's float32 arithmetic does not."""
    pytest.importorskip("unsloth")
    from conftest import compose_train
    from sftlab.config import Backend, Precision, to_schema
    from sftlab.models.backends import resolve_backend

    resolve_backend(Backend.unsloth)
    from unsloth.kernels.utils import get_lora_parameters, matmul_lora

    from sftlab.evaluation.generation import Linear
    from sftlab.models import loading as models

    cfg = to_schema(compose_train(["model=tiny_random", *GPU_MODEL]))
    base, _ = models.load_base(models.model_path(cfg.model, cache_dir), Backend.unsloth, cfg.model, Precision.bf16, 256)
    model = models.add_lora(base, cfg.lora, Backend.unsloth, False, seed=0, max_seq_length=256)
    generator = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # a trained adapter: a fresh one's B is zero and changes nothing
                parameter.copy_(torch.randn(parameter.shape, generator=generator, device="cuda") * 0.05)
    projection = model.get_base_model().model.layers[0].mlp.gate_proj
    x = torch.randn(2, 16, projection.in_features, generator=generator, device="cuda").to(torch.bfloat16)
    with torch.inference_mode():
        expected = matmul_lora(x, *get_lora_parameters(projection))
        decoder_layer = Linear.of(projection, torch.bfloat16)
        assert decoder_layer.accumulate and decoder_layer.lora_a.dtype == torch.bfloat16
        assert torch.equal(decoder_layer(x), expected)
        peft_arithmetic = Linear(
            decoder_layer.weight, None, *(t.float() for t in (decoder_layer.lora_a, decoder_layer.lora_b))
        )
        assert not torch.equal(peft_arithmetic(x), expected)
    models.release_adapter(model)
