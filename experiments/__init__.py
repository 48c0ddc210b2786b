"""Research experiments on rankgrad's estimators (not part of the installed package).

Run one from a checkout with ``python -m experiments.<name> [--quick] [--seed S] [--out DIR]`` (accuracy,
variance, pathwise, noisy); ``--replot RESULTS.json`` redraws a stored run's PNG from its JSON without
re-running it. Shared plumbing comes from ``rankgrad.experiments._common``; the studies that
``rankgrad demo`` runs stay in ``rankgrad.experiments``.
"""
