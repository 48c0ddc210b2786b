# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the whole suite).
# Both create their virtual environments and install what they need; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := -m pip install -q --disable-pip-version-check
# torch==2.13.0 first: on the project machines that pin resolves to a local CPU wheel (no CUDA pull).
TORCH  := torch==2.13.0
# pip >= 25.1 reads PEP 735 dependency groups (`--group dev`: ruff and mypy).
NEWPIP := 'pip>=25.1'

.PHONY: demo test test-core test-trl test-verl test-verl-e2e test-skyrl test-wheel docs bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) $(NEWPIP)
	$(PY) $(PIP) $(TORCH)
	$(PY) $(PIP) -e '.[cli,experiments]'
	touch $@

# The core suite's venv: every extra the tests import, the docs site (its build is a test) and the dev tools.
$(VENV)/.test: $(VENV)/.base
	$(PY) $(PIP) -e '.[test,all,docs]' --group dev
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
	.venv-verl/bin/python $(PIP) -e '.[verl,test]' 'verl[verl-core]==0.9.1'
	touch $@

# SkyRL needs Python >= 3.12: pyenv's 3.12 where `python3.12` is not on PATH. On 3.12 torch==2.13.0 is the
# PyPI (CUDA) wheel, about 5.7 GB with its libraries: no local CPU wheel for cp312.
PYTHON312 ?= $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) python3.12)

.venv-skyrl/.ok: pyproject.toml
	$(PYTHON312) -m venv .venv-skyrl
	.venv-skyrl/bin/python $(PIP) $(TORCH)
	.venv-skyrl/bin/python $(PIP) -e '.[skyrl,test]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/rankgrad demo

# Each framework's test files by glob (tests/integrations/test_<framework>*.py); the verl end-to-end run has
# its own target.
VERL_E2E := tests/integrations/test_verl_e2e.py

test-trl: .venv-trl/.ok
	.venv-trl/bin/python -m pytest -q $(wildcard tests/integrations/test_trl*.py) rankgrad/integrations/trl.py

test-verl: .venv-verl/.ok
	.venv-verl/bin/python -m pytest -q $(filter-out $(VERL_E2E),$(wildcard tests/integrations/test_verl*.py)) rankgrad/integrations/verl.py

# A real 2-step verl PPO run on CPU (Ray, FSDP2 on gloo, tiny Llama, HF rollout; about 1 minute). Its
# harness uses verl 0.9.1 internals, which is why that venv pins verl.
test-verl-e2e: .venv-verl/.ok
	.venv-verl/bin/python -m pytest -q $(VERL_E2E)

test-skyrl: .venv-skyrl/.ok
	.venv-skyrl/bin/python -m pytest -q $(wildcard tests/integrations/test_skyrl*.py) rankgrad/integrations/skyrl.py

# Lint, type check (mypy on rankgrad/_src, the public modules, the CLI and the framework-free integration
# glue; configured in pyproject.toml), then the core suite.
test-core: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# The installed wheel: build it, install it into .venv-wheel (torch first) with its test extras, and run
# tests/core, tests/cli and tests/wheel from a copy of tests/ against it (tests/wheel/run.py).
.venv-wheel/.ok: pyproject.toml
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/python $(PIP) $(TORCH)
	touch $@

test-wheel: .venv-wheel/.ok
	$(PYTHON) tests/wheel/run.py --venv .venv-wheel

# The whole suite: the framework integrations in their venvs, ruff, mypy and the core suite, the wheel.
test: test-trl test-verl test-verl-e2e test-skyrl test-core test-wheel

# The documentation site, built strictly (a warning fails) into site/.
docs: $(VENV)/.test
	$(VENV)/bin/mkdocs build --strict -d site

bench: $(VENV)/.test
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .venv-trl .venv-verl .venv-skyrl .venv-wheel .pytest_cache .hypothesis .mypy_cache site
