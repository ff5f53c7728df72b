# Set-up and everyday commands. Every target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-peers clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build on this machine's disk; then the package itself.
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/neurojoule demo

test: $(STAMP) bench-peers lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Peers for the benchmarks only, never a runtime dependency. --no-deps keeps SpikingJelly
# from pulling torchvision/torchaudio (and with them a multi-GB CUDA build of torch).
bench-peers: $(STAMP)
	$(BIN)/pip install --quiet --no-deps spikingjelly snntorch loguru

bench: bench-peers
	$(BIN)/neurojoule bench neuron

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
