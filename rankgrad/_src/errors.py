"""Exception types shared by every layer (public as ``rankgrad.InputTypeError``).

Wrong *types* (a complex reward array, a mask of strings, a float where an id belongs) raise
:class:`InputTypeError`. It is a :class:`TypeError`, as Python convention asks, and also a
:class:`ValueError`, so code written against earlier releases (which raised ``ValueError`` for every
bad input) keeps catching it.
"""

from __future__ import annotations

__all__ = ["InputTypeError"]


class InputTypeError(TypeError, ValueError):
    """An argument has the wrong type or dtype; the message names the argument and the fix."""
