"""bench/llamacpp.py on the real GGUF (only where llama-cpp-python is installed: the `lm`
extra, which CI leaves out)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from bench.icl import GGUF_FILE, LABELS, SENTIMENT, model_folder
from bench.llamacpp import GgufScorer


@pytest.mark.slow
def test_a_reused_prefix_scores_as_a_fresh_context() -> None:
    from transformers import AutoTokenizer

    from bench.icl import MODEL_CACHE

    tokenizer = AutoTokenizer.from_pretrained(MODEL_CACHE)
    labels = [tokenizer.encode(" " + label, add_special_tokens=False)[0] for label in LABELS]
    shots = [("I love my new self-driving car", "positive"), ("Robots drive badly", "negative")]
    first = tokenizer(SENTIMENT.prompt(shots, "Google tests a car")).input_ids
    second = tokenizer(SENTIMENT.prompt(shots, "Driverless cars are scary")).input_ids
    warm = GgufScorer(model_folder() / GGUF_FILE)
    warm.label_logprobs(first, labels)
    reused = warm.label_logprobs(second, labels)
    assert warm.reused_tokens > 20  # the header and both demonstrations came from the cache
    fresh = GgufScorer(model_folder() / GGUF_FILE).label_logprobs(second, labels)
    np.testing.assert_allclose(reused, fresh, atol=1e-3)
    assert all(value < 0 for value in fresh)
    # The same prompt twice: everything but its last token is reused, the answer is the same.
    again = warm.label_logprobs(second, labels)
    np.testing.assert_allclose(again, reused, atol=1e-3)
