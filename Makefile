# `make demo` and `make test` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := demo-out

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/make_demo_audio.py $(DEMO_DIR)
	$(BIN)/voxmill info $(DEMO_DIR)/*.wav $(DEMO_DIR)/*.flac $(DEMO_DIR)/*.mp3 $(DEMO_DIR)/*.m4a

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests scripts $(wildcard benchmarks)
	$(BIN)/mypy
	$(PYTHON) ../shared/tools/check_layers.py src/voxmill

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
