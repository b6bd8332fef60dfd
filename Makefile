# One entry point for set-up, running and testing. Everything installs into .venv from
# pyproject.toml; torch is pinned so pip takes the wheels this project was built with.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STUDY  ?= ../shared/datasets/dicom/ge_epi_axial

.PHONY: setup run inspect test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,train,bench]'
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/workstation gui $(STUDY)

lint: setup
	$(BIN)/ruff check workstation tests
	$(BIN)/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
