"""bench/lm.py: padded batches score each prompt as it scores alone, and the batching."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

from bench.lm import label_logprobs, length_batches, score_file


class CharTokenizer:
    """Characters as token ids (1 + ord % 90), right padding with 0: enough of a tokenizer's
    interface for the scoring."""

    pad_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [1 + ord(c) % 90 for c in text]

    def __call__(
        self, text: str | list[str], return_tensors: str | None = None, padding: bool = False
    ) -> SimpleNamespace:
        if isinstance(text, str):
            ids = self.encode(text)
            return SimpleNamespace(input_ids=torch.tensor([ids]) if return_tensors else ids)
        encoded = [self.encode(t) for t in text]
        width = max(map(len, encoded))
        ids = torch.tensor([row + [0] * (width - len(row)) for row in encoded])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in encoded])
        return SimpleNamespace(input_ids=ids, attention_mask=mask)


@pytest.fixture(scope="module")
def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def test_a_padded_batch_scores_each_prompt_as_alone(tiny_model: LlamaForCausalLM) -> None:
    tokenizer = CharTokenizer()
    prompts = ["a short one", "a much longer prompt, padded least", "mid length!", "x"]
    labels = [5, 17, 42]
    together = label_logprobs(tiny_model, tokenizer, prompts, labels)
    for prompt, row in zip(prompts, together, strict=True):
        alone = label_logprobs(tiny_model, tokenizer, [prompt], labels)[0]
        assert row == pytest.approx(alone, abs=1e-5)
        assert all(value < 0 for value in row)


def test_score_file_answers_the_uncached_and_checks_the_cached(
    tiny_model: LlamaForCausalLM,
) -> None:
    tokenizer = CharTokenizer()
    labels = [5, 17, 42]
    cached = label_logprobs(tiny_model, tokenizer, ["checked prompt"], labels)[0]
    rows = [
        {"key": "a", "prompt": "first"},
        {"key": "b", "prompt": "second, longer"},
        {"key": "c", "prompt": "checked prompt", "cached": cached},
    ]
    answers, summary = score_file(rows, tiny_model, tokenizer, labels, batch_tokens=64)
    assert [answer["key"] for answer in answers] == ["a", "b"]
    assert answers[1]["logprobs"] == pytest.approx(
        label_logprobs(tiny_model, tokenizer, ["second, longer"], labels)[0], abs=1e-5
    )
    assert summary["checked"] == 1 and summary["checked_argmax_agree"] == 1
    assert summary["checked_max_abs_logprob_diff"] < 1e-5


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(1, 200))
def test_length_batches_cover_every_row_once_within_the_budget(
    lengths: list[int], budget: int
) -> None:
    batches = length_batches(lengths, budget)
    assert sorted(row for batch in batches for row in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[row] for row in batch)
        assert len(batch) == 1 or len(batch) * longest <= budget
        assert lengths[batch[0]] == longest


def test_the_precisions_are_compared_on_the_same_prompts(tiny_model: LlamaForCausalLM) -> None:
    """bench/lm_precision.py: float32 is its own reference, the cheaper copies really run in
    their precision (their answers differ from float32's, a little), and every prompt is
    timed for every precision."""
    from bench.lm_precision import compare, precisions

    models = precisions(tiny_model)
    assert next(models["bfloat16"].parameters()).dtype == torch.bfloat16
    assert next(tiny_model.parameters()).dtype == torch.float32  # the copies leave it as it was
    ticks = iter(range(10**6))
    prompts = ["first prompt", "a second, longer prompt", "third"]
    summary = compare(models, CharTokenizer(), prompts, [5, 17, 42], clock=lambda: next(ticks))
    assert summary["float32"]["max_abs_logprob_diff"] == 0.0
    assert summary["float32"]["argmax_agree"] == len(prompts)
    for name in ("bfloat16", "int8 dynamic"):
        assert 0.0 < summary[name]["max_abs_logprob_diff"] < 1.0
        assert 0 <= summary[name]["argmax_agree"] <= len(prompts)
    # The fake clock ticks once per reading: every forward took one tick.
    assert all(
        row["median_ms"] == 1e3 and row["median_ratio_to_float32"] == 1.0
        for row in summary.values()
    )
