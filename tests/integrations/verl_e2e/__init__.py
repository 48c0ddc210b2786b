"""A real verl training run on CPU (Ray, FSDP2 on gloo, a tiny Llama), for the end-to-end test.

verl 0.9.1 has no CPU platform and only vLLM / SGLang / TensorRT-LLM rollout servers. Everything needed
to run it on a machine without an accelerator lives here, outside verl's source:

- :mod:`.plugin`: loaded by ``import verl`` in every process (``VERL_USE_EXTERNAL_MODULES=verl_e2e.plugin``
  with this folder's parent on ``PYTHONPATH``). It registers the CPU platform (:mod:`.cpu_platform`), the
  HF-transformers rollout (:mod:`.hf_rollout`), a gloo-only process group and, when
  ``RANKGRAD_VERL_E2E_RECORD`` names a folder, records what the ``rankgrad`` estimator and the policy loss
  saw (:mod:`.record`).
- :mod:`.build`: the tiny model, character tokenizer, parquet data and reward function, built in code.
- :mod:`.launch`: ``python -m verl_e2e.launch WORKDIR`` builds them and runs ``verl.trainer.main_ppo``.
"""
