"""Shared fixtures. Helpers live in modules (tests/backends.py, tests/brute.py), not here."""

from __future__ import annotations

import pytest

from tests.backends import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param
