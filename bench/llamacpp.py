"""Next-token label scoring on the quantised GGUF itself, through llama.cpp (llama-cpp-python).

The transformers path dequantises SmolLM2's Q4_1 weights to float32 and runs a full PyTorch
forward (about 0.9 s for a 340-token prompt on two cores); llama.cpp runs the 4-bit weights
directly with its own CPU kernels. Prompts arrive as token ids from the same Hugging Face
tokenizer, so both backends see identical inputs; only the arithmetic differs (4-bit weights,
8-bit activations in llama.cpp's dot products), which is why the answers are cached under a
model name of their own and checked against the float32 scorer (docs/benchmarks.md).

Consecutive prompts share their instruction header (and, for prompts with a fixed prefix of
demonstrations, that prefix): the KV cache of the longest common token prefix with the previous
prompt is kept and only the rest is evaluated, as a provider's prefix cache would.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

N_CTX = 2048


class GgufScorer:
    """The label log-probabilities after a prompt, from a GGUF model run by llama.cpp."""

    def __init__(self, path: Path, threads: int = 1, n_ctx: int = N_CTX) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=False,
        )
        self.vocabulary = self.llm.n_vocab()
        self.previous: list[int] = []
        self.reused_tokens = 0

    def label_logprobs(self, ids: Sequence[int], label_tokens: Sequence[int]) -> list[float]:
        """log-softmax of the next-token logits after ``ids`` (float64), at ``label_tokens``."""
        ids = list(ids)
        if not ids:
            raise ValueError("an empty prompt has no next token")
        common = 0
        for a, b in zip(self.previous, ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # at least one token is evaluated, for its logits
        self.llm.n_tokens = common  # eval drops the KV cache past n_tokens, then goes on
        self.llm.eval(ids[common:])
        self.reused_tokens += common
        self.previous = ids
        # Without logits_all the last batch asks for the logits of its last token only.
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.vocabulary,))
        logits = logits.astype(np.float64)
        shifted = logits - logits.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        return [float(logprobs[token]) for token in label_tokens]
