# One entry point for set-up, running and testing. Everything installs into .venv from
# pyproject.toml; torch is pinned so pip takes the wheels this project was built with.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STUDY  ?= ../shared/datasets/dicom/ge_epi_axial

.PHONY: setup run inspect test lint fuzz clean package package-test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,train,bench,cluster]'
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/workstation gui $(STUDY)

lint: setup
	$(BIN)/ruff check workstation tests
	$(BIN)/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# Fuzz load_study in child processes: make fuzz SECONDS=900 (or EXECUTIONS=50000), JOBS=2.
# Prints executions, exec/s and the defect counts; writes FUZZ_REPORT and keeps small
# examples of each defect class in tests/fuzz/corpus/crashes/ (regression inputs).
SECONDS    ?=
EXECUTIONS ?=
JOBS       ?= 2
FUZZ_REPORT ?= /tmp/fuzz_findings.md
fuzz: setup
	$(BIN)/python -m tests.fuzz.run --seconds $(or $(SECONDS),0) --executions $(or $(EXECUTIONS),0) \
		--jobs $(JOBS) --report $(FUZZ_REPORT) $(FUZZ_ARGS)

# Offline installers (README "Install at a clinic without internet"): a PyInstaller onedir
# build wrapped as dist/package/brain-mri-triage_VERSION_amd64.deb and .tar.gz. CPU-heavy
# (minutes); not part of `make test`. VARIANT=full keeps torch and the CUDA libraries.
VARIANT ?= cpu
package: setup
	$(BIN)/pip install --quiet -e '.[package]'
	$(BIN)/python packaging/build.py --variant $(VARIANT)

# Install the .deb into a clean root without network (unshare -n), run it, upgrade it,
# remove it; the same for the .tar.gz (root; dist/package-test/: report.json, window.png).
# A Debian minbase root makes it a chroot test: packaging/make_test_root.sh dist/package-test-root
package-test: setup
	unshare --net --mount $(BIN)/python packaging/test_package.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
