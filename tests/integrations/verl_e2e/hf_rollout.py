"""A minimal HF-transformers rollout for verl 0.9.1's async (agent-loop) rollout: ``rollout.name=hf``.

verl 0.9.1 registers async rollouts only for vLLM, SGLang and TensorRT-LLM. This module adds:

- :class:`HFRolloutServer`: a Ray actor holding a ``transformers`` causal LM on CPU, with the token-in /
  token-out ``generate`` the agent loop calls (ancestral sampling at the rollout temperature, log-probs of
  the sampled tokens) and no-op sleep / wake-up / cache calls.
- :class:`HFReplica`: the ``RolloutReplica`` that starts one server per replica (hybrid mode).
- :class:`HFServerAdapter`: the ``BaseRollout`` living in the trainer worker; ``update_weights`` sends the
  actor's full parameters to the server, so each step samples from the current policy.

:func:`verl_e2e.plugin.register_hf_rollout` puts them in ``verl.workers.rollout.base._ROLLOUT_REGISTRY`` and
``RolloutReplicaRegistry``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from . import record

NAME = "hf"


def server_name(replica_rank: int) -> str:
    """The Ray actor name of replica ``replica_rank``'s server."""
    return f"verl_e2e_hf_server_{replica_rank}"


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the sorted (name, float32 bytes) of a state dict: equal iff the parameters are equal."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class HFRolloutServer:
    """Token-in / token-out generation with a ``transformers`` model on CPU.

    Args:
      config: verl's ``RolloutConfig`` (``response_length``, ``prompt_length``, ``temperature``...).
      model_config: verl's ``HFModelConfig`` (``local_path``: the saved model folder).
      replica_rank: the replica this server belongs to.
    """

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from transformers import AutoModelForCausalLM

        self.config = config
        self.replica_rank = replica_rank
        path = getattr(model_config, "local_path", None) or model_config.path
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                          attn_implementation="sdpa").eval()
        self.eos = self.model.config.eos_token_id
        self.syncs: list[str] = []  # digest of the weights after each update_weights
        self.global_steps: int | None = None  # the trainer step of the loaded weights (verl's tag)
        self._lock = asyncio.Lock()
        self._gen = torch.Generator().manual_seed(int(getattr(config, "seed", 0) or 0) + replica_rank)

    # ---------------------------------------------------------------- generation
    async def generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str,
                       **_unused: Any) -> TokenOutput:
        """Sample one response: x_{t+1} ~ softmax(logits_t / temperature), up to max_tokens or EOS.

        Returns: ``TokenOutput`` with the response ids and log π(x_t | x_<t) of each sampled token.
        """
        params = dict(sampling_params)
        prompt_ids = [int(t) for t in prompt_ids]
        cap = self.config.response_length
        budget = self.config.prompt_length + self.config.response_length - len(prompt_ids)
        max_tokens = params.pop("max_tokens", params.pop("max_new_tokens", min(cap, budget)))
        max_tokens = max(1, min(int(max_tokens), cap, budget))
        temperature = float(params.get("temperature", 1.0) or 0.0)
        async with self._lock:
            ids = torch.tensor([prompt_ids])
            out: list[int] = []
            logps: list[float] = []
            with torch.no_grad():
                for _ in range(max_tokens):
                    logits = self.model(input_ids=ids).logits[0, -1].float()
                    if temperature > 0:
                        logp = torch.log_softmax(logits / temperature, -1)
                        tok = int(torch.multinomial(logp.exp(), 1, generator=self._gen))
                    else:
                        logp = torch.log_softmax(logits, -1)
                        tok = int(logp.argmax())
                    out.append(tok)
                    logps.append(float(logp[tok]))
                    ids = torch.cat([ids, torch.tensor([[tok]])], 1)
                    if tok == self.eos:
                        break
        return TokenOutput(token_ids=out, log_probs=logps if params.get("logprobs") else None,
                           stop_reason="completed", extra_fields={"global_steps": self.global_steps})

    # ---------------------------------------------------------------- weights
    def update_weights(self, state: dict[str, torch.Tensor], global_steps: int | None = None) -> str:
        """Load the actor's full parameters (every model key must be given); record and return their
        digest (kind ``sync``)."""
        own = self.model.state_dict()
        missing = sorted(set(own) - set(state))
        unknown = sorted(set(state) - set(own))
        if missing or unknown:
            raise ValueError(f"update_weights: missing {missing[:5]}, unknown {unknown[:5]}")
        self.model.load_state_dict(state, strict=True)
        if global_steps is not None:
            self.global_steps = global_steps
        self.syncs.append(state_digest(self.model.state_dict()))
        record.save("sync", {"digest": self.syncs[-1], "global_steps": global_steps})
        return self.syncs[-1]

    def get_syncs(self) -> list[str]:
        return list(self.syncs)

    # ---------------------------------------------------------------- no-ops verl calls on every server
    async def wake_up(self, *_a: Any, **_k: Any) -> None:
        return None

    async def sleep(self, *_a: Any, **_k: Any) -> None:
        return None

    async def abort_all_requests(self, *_a: Any, **_k: Any) -> dict[str, Any]:
        return {}

    async def resume_generation(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def start_profile(self, **_k: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps


class HFReplica(RolloutReplica):
    """One :class:`HFRolloutServer` per replica (no GPU resources: it shares the trainer's CPU)."""

    async def launch_servers(self) -> None:
        cls = ray.remote(HFRolloutServer)
        server = cls.options(name=server_name(self.replica_rank), num_cpus=0,
                             max_concurrency=self.max_concurrency).remote(
            config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hf-server-{self.replica_rank}"


class HFServerAdapter(BaseRollout):
    """The rollout object in the trainer worker: forwards the actor's weights to its replica's server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, model_config, device_mesh)
        world = (self.config.tensor_model_parallel_size * self.config.data_parallel_size
                 * self.config.pipeline_model_parallel_size)
        self.replica_rank = int(os.environ.get("RANK", 0)) // world
        self.is_leader = int(os.environ.get("RANK", 0)) % world == 0
        self.sleep_level = 2

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(self, weights: Any, wire_format: str = "named_tensors", **kwargs: Any) -> None:
        """Gather (name, tensor) pairs as full CPU tensors and load them into the server."""
        if wire_format != "named_tensors":
            raise ValueError(f"wire_format: the HF rollout takes 'named_tensors', got {wire_format!r}")
        state = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", torch.float32).clone()
        if self.is_leader:
            server = ray.get_actor(server_name(self.replica_rank))
            await server.update_weights.remote(state, kwargs.get("global_steps"))

