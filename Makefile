# convtrain: two commands on a fresh machine.
#   make train   set up .venv and train the default model on the bundled MNIST
#   make test    set up .venv if missing and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TRAIN_STAMP := $(VENV)/.installed-train
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup train test lint bench clean

setup: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# make train installs only what training needs, so a first run stays quick; make test adds the
# extras (export, explain, timm, sweep, parquet, svhn, heic, postgres) and the test tools, so every test runs.
$(TRAIN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(TRAIN_STAMP)

train: $(TRAIN_STAMP)
	$(BIN)/convtrain train

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build dist src/*.egg-info
