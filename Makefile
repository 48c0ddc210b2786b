# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the whole suite).
# Both create their virtual environments and install what they need; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := -m pip install -q --disable-pip-version-check
# torch==2.13.0 first: on the project machines that pin resolves to a local CPU wheel (no CUDA pull).
TORCH  := torch==2.13.0

.PHONY: demo test test-core test-trl test-verl bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) $(TORCH)
	$(PY) $(PIP) -e '.[cli,experiments]'
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PY) $(PIP) -e '.[test,all]'
	touch $@

# TRL and verl pin different transformers versions: each gets its own venv and runs its own tests.
.venv-trl/.ok: pyproject.toml
	$(PYTHON) -m venv .venv-trl
	.venv-trl/bin/python $(PIP) $(TORCH)
	.venv-trl/bin/python $(PIP) -e '.[trl,test]'
	touch $@

.venv-verl/.ok: pyproject.toml
	$(PYTHON) -m venv .venv-verl
	.venv-verl/bin/python $(PIP) $(TORCH)
	.venv-verl/bin/python $(PIP) -e '.[verl,test]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/rankgrad demo

test-trl: .venv-trl/.ok
	.venv-trl/bin/python -m pytest -q tests/integrations/test_trl.py tests/integrations/test_trl_metrics.py tests/integrations/test_trl_multiprocess.py rankgrad/integrations/trl.py

test-verl: .venv-verl/.ok
	.venv-verl/bin/python -m pytest -q tests/integrations/test_verl.py tests/integrations/test_verl_metrics.py rankgrad/integrations/verl.py

test-core: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The whole suite: the framework integrations in their venvs, then ruff and the core suite.
test: test-trl test-verl test-core

bench: $(VENV)/.test
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .venv-trl .venv-verl .pytest_cache .hypothesis
