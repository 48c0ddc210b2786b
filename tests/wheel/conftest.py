"""tests/wheel/test_installed.py checks an installed wheel: it is collected only when ``RANKGRAD_WHEEL``
names that wheel, as tests/wheel/run.py (``make test-wheel``) sets it."""

import os

collect_ignore = [] if os.environ.get("RANKGRAD_WHEEL") else ["test_installed.py"]
