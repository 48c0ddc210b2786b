"""Adapters for RL training loops.

* :func:`group_advantages`, :func:`token_advantages` — framework-free: flat scores + uids → per-rollout
  advantages → token-level advantages under a response mask;
* :mod:`rankgrad.integrations.trl` — ``RankGradGRPOTrainer`` (``pip install rankgrad[trl]``);
* :mod:`rankgrad.integrations.verl` — the ``rankgrad`` advantage estimator for verl, registered through
  the ``verl.plugins`` entry point (``pip install rankgrad[verl]``).

The framework modules are imported only when you import them by name.
"""

from rankgrad.integrations._common import group_advantages, token_advantages

__all__ = ["group_advantages", "token_advantages"]
