# The two commands of the README. Both create .venv when it is missing and reinstall when pyproject changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench privacy-noisy

run: $(STAMP)
	$(BIN)/fedsplit run

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/frequency.py

# Heterogeneous clients: each client's accuracy (from the run) next to what the attacks recover of its faces.
privacy-noisy: $(STAMP)
	$(BIN)/fedsplit run configs/noisy_clients.yaml
	$(BIN)/fedsplit privacy configs/noisy_clients.yaml

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "fedsplit needs Python 3.11, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)
