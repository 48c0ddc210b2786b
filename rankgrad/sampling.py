"""Objective-aware prompt sampling (see ``_src/sampling.py``)."""

from rankgrad._src.sampling import SCORES, PromptSampler, prompt_scores

__all__ = ["SCORES", "PromptSampler", "prompt_scores"]
