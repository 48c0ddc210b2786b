"""``python -m rankgrad.cli``: the same as the ``rankgrad`` console script."""

import sys

from rankgrad.cli import main

sys.exit(main())
