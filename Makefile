# Every target that needs the environment creates it first (.venv, from pyproject.toml
# pinned by constraints.txt), so `make demo` and `make test` work on a fresh clone.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck check bench lock clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

demo: $(STAMP)  ## run jobs/demo.toml on the sample data against a local sandbox
	$(PY) scripts/demo.py

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)  ## mypy: strict on src/, relaxed on tests/ (pyproject.toml)
	$(VENV)/bin/mypy

check: lint typecheck test  ## lint, types and tests: run before every commit

bench: $(STAMP)  ## the benchmarks in bench/, one table (ARGS=--quick for a short run)
	$(PY) bench/run_all.py $(ARGS)

lock: $(STAMP)  ## refresh constraints.txt from the current environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^customer-import' > constraints.txt

clean:  ## remove the environment and outputs
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
