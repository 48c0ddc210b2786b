"""Root conftest: skip doctest collection of framework adapters whose framework is not installed,
and of the worker scripts that integration tests launch.

The main test venv has neither trl, verl nor skyrl (they pin different transformers and Python
versions); their adapters are tested in their own venvs (``make test-trl``, ``make test-verl``,
``make test-skyrl``).
"""

import importlib.util

collect_ignore = [
    path
    for module, path in [
        ("trl", "rankgrad/integrations/trl.py"),
        ("verl", "rankgrad/integrations/verl.py"),
        ("skyrl", "rankgrad/integrations/skyrl.py"),
    ]
    if importlib.util.find_spec(module) is None
]
# Scripts that integration tests launch in subprocesses (e.g. under `accelerate launch`): not test
# modules, and importing them would start their work.
collect_ignore_glob = ["tests/integrations/_*.py"]
