PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
# the peers of `make bench-peers` (neural-tangents, PyHessian) live in their own venv
PEERS_PYTHON ?= python3.11
PEERS_VENV   ?= .venv-peers
PEERS_STAMP  := $(PEERS_VENV)/.installed

.PHONY: install dev demo lint test verify clean bench-peers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first, pinned, so that nothing later can pull a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt "torch==2.13.0"
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

# the dev extra (pytest, ruff, mypy) lives in pyproject.toml: a change there reinstalls it
$(DEVSTAMP): $(STAMP) pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(STAMP)
dev: $(DEVSTAMP)

# a failed verdict (exit 1) is a finding the table reports, not a broken demo; bad input or a crash is
demo: $(STAMP)
	@$(BIN)/phenolab verify --quick; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "demo: some verdicts failed (findings: see the table above)"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

# ruff (lint, import order) and mypy, configured in pyproject.toml (no exclusions)
lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m mypy src/phenolab

test: $(DEVSTAMP) lint
	$(BIN)/python -m pytest

$(PEERS_VENV)/bin/python:
	$(PEERS_PYTHON) -m venv $(PEERS_VENV)

# torch first, pinned (the local CPU build), then the peers' pins; about 2 min and 3.4 GB
$(PEERS_STAMP): $(PEERS_VENV)/bin/python benchmarks/peers-requirements.txt
	$(PEERS_VENV)/bin/python -m pip install --quiet "torch==2.13.0"
	$(PEERS_VENV)/bin/python -m pip install --quiet -r benchmarks/peers-requirements.txt
	touch $@

# phenolab vs neural-tangents (empirical NTK) and PyHessian (top Hessian eigenvalue), one table;
# not part of `make test`
bench-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python benchmarks/peers.py --peer-python $(PEERS_VENV)/bin/python

clean:
	rm -rf $(VENV) phenolab-runs .pytest_cache .mypy_cache .ruff_cache
