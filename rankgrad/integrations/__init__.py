"""Adapters for RL training loops.

* :func:`group_advantages`, :func:`token_advantages` — framework-free: flat scores + uids → per-rollout
  advantages → token-level advantages under a response mask;
* :mod:`rankgrad.integrations.trl` — ``RankGradGRPOTrainer``, ``RankGradRLOOTrainer``
  (``pip install rankgrad[trl]``);
* :mod:`rankgrad.integrations.verl` — the ``rankgrad`` advantage estimator for verl, registered through
  the ``verl.plugins`` entry point (``pip install rankgrad[verl]``);
* :mod:`rankgrad.integrations.skyrl` — ``rankgrad_max@K`` estimators in SkyRL's advantage-estimator
  registry, and ``register`` for any objective (``pip install rankgrad[skyrl]``, Python >= 3.12).

The framework modules are imported only when you import them by name.
"""

from rankgrad.integrations._common import group_advantages, token_advantages

__all__ = ["group_advantages", "token_advantages"]
