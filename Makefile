# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the whole suite).
# Both create .venv and install what they need; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: demo test bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# torch==2.13.0 first: on the project machines that pin resolves to a local CPU wheel (no CUDA pull).
$(VENV)/.test: $(VENV)/.base
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,all]'
	touch $@

demo: $(VENV)/.base
	$(PY) examples/bandit_demo.py

test: $(VENV)/.test
	$(VENV)/bin/ruff check rankgrad tests examples
	$(PY) -m pytest -q

bench: $(VENV)/.test
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
