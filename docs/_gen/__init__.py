"""Build-time generators of the documentation site (loaded by the mkdocs hook ``docs/_gen/hooks.py``).

``render``: the stored results (``docs/results/*.json``, ``benchmarks/results/results.json``) and the
``{{ ... }}`` placeholder syntax that puts their numbers into pages; ``pages``: the generated blocks
(registries, the command-line reference, experiment tables, performance tables).
"""
