# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	@echo "== setting up $(VENV): a virtual environment with zeroing-sim and its dependencies (first time only)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -e '.[test]'
	touch $(STAMP)
	@echo "== $(VENV) is ready"

run: $(STAMP)
	$(PY) -m zeroing compare experiments/default.toml

test: $(STAMP)
	$(PY) -m pytest -q -rs

bench: $(STAMP)
	$(PY) experiments/bench_allocator.py

clean:
	rm -rf $(VENV) results
	find . -name '*.nbi' -o -name '*.nbc' | xargs rm -f  # numba's compiled-code cache
