# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean cross-python

# The install also gives the venv its own `python3` Jupyter kernel (examples/notebook, make demo).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff (lint and formatting) and mypy --strict over src/; the same gate runs in CI.
lint: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks examples
	$(BIN)/python -m ruff format --check src tests benchmarks examples
	$(BIN)/python -m mypy src

# Benchmarks run merkl and its peers (DVC, joblib, redun) side by side in their own venv.
.venv-bench/.installed: pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q -e '.[test,bench]'
	touch $@

bench: .venv-bench/.installed
	for script in benchmarks/bench_*.py; do PATH="$(CURDIR)/.venv-bench/bin:$$PATH" .venv-bench/bin/python $$script || exit 1; done

# Another interpreter (from pyenv) for tests/test_code_identity.py, which checks that a dry run
# gives the same hashes on it as on this one. The tests run it on ./src (PYTHONPATH), so the
# install here is only for merkl's dependencies. `make cross-python CROSS_PYTHON=3.12` adds 3.12.
CROSS_PYTHON ?= 3.13
cross-python:
	test -x .venv-py$(CROSS_PYTHON)/bin/python || \
		"$$(pyenv prefix $$(pyenv latest $(CROSS_PYTHON)))/bin/python" -m venv .venv-py$(CROSS_PYTHON)
	.venv-py$(CROSS_PYTHON)/bin/python -m pip install -q .

clean:
	rm -rf $(VENV) build .pytest_cache
