"""Whether SmolLM2 can score on the CPU in a cheaper precision than float32
(``python -m bench.lm_precision [--prompts N]``).

Issue 17 asks for faster CPU scoring, checked against the float32 scorer (the same predicted
label on at least 99 % of prompts) before it is used. This scores the same prompts (the
sentiment task's first ``N`` test tweets with the joint default's 8 demonstrations, as
``bench icl`` builds them) with the dequantised model in float32, in bfloat16 (weights and
activations; the CPU's bf16 matrix kernels), and with torch's dynamic int8 quantisation of
every linear layer, the three alternating prompt by prompt so a drift of the machine hits them
alike. It reports per precision the median milliseconds per forward, the median ratio to
float32 on the same prompt, how many predicted labels agree with float32, and the largest
log-probability difference; ``docs/results/icl-lm-precision.json``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.environment import save_result
from bench.lm import label_logprobs

RESULT = Path("docs/results/icl-lm-precision.json")


def precisions(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """``model`` (float32) and its bfloat16 and int8-dynamic copies."""
    return {
        "float32": model,
        "bfloat16": copy.deepcopy(model).to(torch.bfloat16),
        "int8 dynamic": torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        ),
    }


def compare(
    models: dict[str, torch.nn.Module],
    tokenizer: Any,
    prompts: Sequence[str],
    label_tokens: Sequence[int],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, float]]:
    """Score every prompt with every model (``"float32"`` among them, the reference), in
    turn per prompt: per model the median ms per forward, the median per-prompt time ratio
    to float32, the number of argmax labels equal to float32's and the largest absolute
    log-probability difference."""
    answers: dict[str, list[list[float]]] = {name: [] for name in models}
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for prompt in prompts:
        for name, model in models.items():
            started = clock()
            answers[name].append(label_logprobs(model, tokenizer, [prompt], label_tokens)[0])
            seconds[name].append(clock() - started)
    reference = np.array(answers["float32"])
    reference_seconds = np.array(seconds["float32"])
    summary = {}
    for name in models:
        values = np.array(answers[name])
        summary[name] = {
            "median_ms": 1e3 * statistics.median(seconds[name]),
            "median_ratio_to_float32": float(
                np.median(np.array(seconds[name]) / reference_seconds)
            ),
            "argmax_agree": int((values.argmax(1) == reference.argmax(1)).sum()),
            "max_abs_logprob_diff": float(np.abs(values - reference).max()),
        }
    return summary


def run(count: int) -> dict[str, Any]:
    from bench.icl import CACHE, FULL, LanguageModel, Method, demonstrations, prompts_for, splits
    from selector import Pool

    lm = LanguageModel(CACHE / "icl-lm-precision.jsonl")  # its cache is not used here
    pool_split, _, test = splits(
        FULL.pool_size, FULL.validation, FULL.test, FULL.seed, lm.clip, FULL.sample
    )
    pool = Pool.from_arrays(pool_split.vectors, labels=pool_split.labels, normalized=True)
    queries = test.take(range(count))
    chosen = demonstrations(Method("mmdshot joint", 8, "mmd", {}), pool, pool_split, queries)
    prompts = prompts_for(chosen, pool_split, queries)
    tokens = [len(lm.tokenizer(prompt).input_ids) for prompt in prompts]
    summary = compare(precisions(lm.model), lm.tokenizer, prompts, lm.label_tokens)
    return {
        "task": "sentiment",
        "method": "mmdshot joint, k = 8",
        "prompts": count,
        "median_prompt_tokens": statistics.median(tokens),
        "torch_threads": torch.get_num_threads(),
        "precisions": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lm_precision", description=__doc__)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    result = run(args.prompts)
    save_result(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
