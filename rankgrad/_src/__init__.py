"""Implementation modules behind the public ones (rankgrad.objectives, .exact, .noisy, ...).

Not a public API: import from ``rankgrad`` and its public modules.
"""
