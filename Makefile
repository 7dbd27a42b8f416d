# bayesglmm: two commands for a newcomer — `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

# Find a Python >= 3.12: $PYTHON, python3.13, python3.12, python3, then pyenv's installs.
FIND_PY := for c in "$$PYTHON" python3.13 python3.12 python3 \
	  "$$(pyenv prefix 3.13 2>/dev/null)/bin/python" "$$(pyenv prefix 3.12 2>/dev/null)/bin/python" \
	  $$HOME/.pyenv/versions/3.1[2-9]*/bin/python; do \
	  [ -n "$$c" ] || continue; \
	  if command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    command -v "$$c"; break; fi; done

.PHONY: demo test test-fast bench sbc venv clean fresh-clone-check lint notebooks

$(VENV)/.stamp-base: pyproject.toml
	@py="$$($(FIND_PY))"; \
	if [ -z "$$py" ]; then echo "error: bayesglmm needs Python >= 3.12 (PyMC 6). None found: install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12" >&2; exit 1; fi; \
	echo "using $$py ($$($$py --version))"; \
	[ -x $(PY) ] || $$py -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PY) -m pip install -q -e ".[test]"
	touch $@

$(VENV)/.stamp-bench: $(VENV)/.stamp-test
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

venv: $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(PY) -m bayesglmm demo

test: lint
	$(PY) -m pytest -n 2 --dist loadfile -q --durations=20 tests

test-fast: $(VENV)/.stamp-test
	$(PY) -m pytest -n 2 --dist loadfile -q -m "not slow" tests

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run.py

# Simulation-based calibration (slow, ~1 h on 2 cores): writes benchmarks/sbc.md
sbc: $(VENV)/.stamp-bench
	$(PY) benchmarks/sbc.py

# Execute the teaching notebooks in place with their full draw counts, storing the outputs
notebooks: $(VENV)/.stamp-test
	$(PY) scripts/execute_notebooks.py

# ruff (lint + format) and mypy on the package; part of `make test`
lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check bayesglmm tests benchmarks scripts
	$(VENV)/bin/ruff format --check bayesglmm tests benchmarks scripts
	$(VENV)/bin/mypy

fresh-clone-check:
	bash scripts/fresh_clone_check.sh

clean:
	rm -rf $(VENV) .pytest_cache
