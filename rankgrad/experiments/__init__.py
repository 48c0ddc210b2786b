"""The studies that ``rankgrad demo`` builds on (risk, bestofk, passk_study, demo); each writes a PNG and
a JSON.

Run one with ``python -m rankgrad.experiments.<name> [--quick] [--seed S] [--out DIR]`` (risk and bestofk
also take ``--replot RESULTS.json``, which redraws a stored run's PNG from its JSON). The research studies
of the estimators (accuracy, variance, pathwise, noisy) live in the top-level ``experiments/`` package of
a source checkout and are not installed.
"""
