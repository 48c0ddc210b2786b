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
# Scripts and harnesses that integration tests launch in subprocesses (`accelerate launch`, the verl
# end-to-end run): not test modules; they need their framework and importing them would start work.
collect_ignore_glob = ["tests/integrations/_*.py", "tests/integrations/verl_e2e/*"]
