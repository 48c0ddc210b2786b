"""Runnable studies that show what each objective does (each writes a PNG and a JSON).

Run one with ``python -m rankgrad.experiments.<name> [--quick] [--seed S] [--out DIR]``; ``rankgrad demo``
runs reduced versions of the risk-sensitive gridworld and the best-of-K language model.
"""
