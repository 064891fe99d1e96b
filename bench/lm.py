"""Next-token label scoring with a causal LM, one prompt or a padded batch, and
``python -m bench.lm``: score exported ICL prompts on another machine (a GPU).

Only torch and transformers are imported here, so the scoring runs where neither the
selector nor its faiss is installed. The workflow (docs/benchmarks.md):

1. here: ``python -m bench.icl --export prompts.jsonl --check 500`` writes the uncached
   prompts as ``{"key", "prompt"}`` lines, and 500 cached ones with their ``"cached"`` answers;
2. there: ``python -m bench.lm prompts.jsonl answers.jsonl --gguf DIR --tokenizer DIR``
   scores every line and writes the uncached ones' ``{"key", "logprobs"}`` answers, and in
   ``answers.jsonl.check.json`` how far the checked ones are from the cached answers;
3. here: append answers.jsonl to bench/.cache/icl-smollm2.jsonl and run ``python -m bench icl``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

BATCH_TOKENS = 32_768  # padded tokens per batch on an accelerator


def label_logprobs(
    model: Any, tokenizer: Any, prompts: Sequence[str], label_tokens: Sequence[int]
) -> list[list[float]]:
    """The next-token log-probabilities of ``label_tokens`` after each prompt: ``(B, labels)``.

    One prompt runs unpadded (the model's own ``logits_to_keep=1``). Several are right-padded
    to one ``(B, T)`` batch with an attention mask: causal attention keeps each prompt's
    positions and context as when alone, and the decoder's hidden state at each prompt's last
    real token, ``(B, hidden)``, goes through the LM head, ``(B, vocabulary)``, then a float32
    log-softmax.
    """
    device = next(model.parameters()).device
    with torch.inference_mode():
        if len(prompts) == 1:
            ids = tokenizer(prompts[0], return_tensors="pt").input_ids.to(device)
            logits = model(input_ids=ids, logits_to_keep=1).logits[:, -1]
        else:
            encoded = tokenizer(list(prompts), return_tensors="pt", padding=True)
            ids = encoded.input_ids.to(device)
            mask = encoded.attention_mask.to(device)
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            last = mask.sum(dim=1) - 1
            logits = model.lm_head(hidden[torch.arange(len(prompts), device=device), last])
        logprobs = torch.log_softmax(logits.float(), dim=-1)[:, list(label_tokens)]
    return [list(map(float, row)) for row in logprobs.cpu().tolist()]


def single_token(tokenizer: Any, text: str) -> int:
    """The id of ``text``, which must be one token."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"label {text!r} is {len(ids)} tokens; the scoring needs one")
    return int(ids[0])


def length_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Row indices grouped by similar length, longest first, each group's padded size
    (``len(group) * longest``) at most ``batch_tokens`` (a lone longer row is its own)."""
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    batches: list[list[int]] = []
    for row in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= batch_tokens:
            batches[-1].append(row)
        else:
            batches.append([row])
    return batches


def score_file(
    rows: list[dict[str, Any]],
    model: Any,
    tokenizer: Any,
    label_tokens: Sequence[int],
    batch_tokens: int = BATCH_TOKENS,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score ``rows`` (``{"key", "prompt"[, "cached"]}``): the answers of the rows without a
    cached answer, and a summary (counts, seconds, and for the cached rows the largest
    absolute log-probability difference and how often the argmax label agrees)."""
    lengths = [len(tokenizer(row["prompt"]).input_ids) for row in rows]
    scored: list[list[float]] = [[] for _ in rows]
    started = time.perf_counter()
    for batch in length_batches(lengths, batch_tokens):
        prompts = [rows[i]["prompt"] for i in batch]
        for i, logprobs in zip(
            batch, label_logprobs(model, tokenizer, prompts, label_tokens), strict=True
        ):
            scored[i] = logprobs
    seconds = time.perf_counter() - started
    answers, differences, agree = [], [], 0
    for row, logprobs in zip(rows, scored, strict=True):
        if "cached" in row:
            cached = row["cached"]
            differences.append(max(abs(a - b) for a, b in zip(logprobs, cached, strict=True)))
            agree += int(logprobs.index(max(logprobs)) == cached.index(max(cached)))
        else:
            answers.append({"key": row["key"], "logprobs": logprobs})
    summary = {
        "prompts": len(rows),
        "answers": len(answers),
        "seconds": seconds,
        "tokens": sum(lengths),
        "checked": len(differences),
        "checked_max_abs_logprob_diff": max(differences, default=None),
        "checked_argmax_agree": agree,
        "device": str(next(model.parameters()).device),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    return answers, summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lm", description=__doc__)
    parser.add_argument("prompts", type=Path)
    parser.add_argument("answers", type=Path)
    parser.add_argument("--gguf", type=Path, required=True, help="folder holding the .gguf")
    parser.add_argument("--gguf-file", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--tokenizer", type=Path, required=True, help="the saved tokenizer")
    parser.add_argument("--labels", default="negative,neutral,positive")
    parser.add_argument("--batch-tokens", type=int, default=BATCH_TOKENS)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.backends.cuda.matmul.allow_tf32 = False  # the same float32 arithmetic as the CPU
    torch.backends.cudnn.allow_tf32 = False
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        args.gguf, gguf_file=args.gguf_file, dtype=torch.float32
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device=device).eval()  # type: ignore[call-arg]
    loaded = time.perf_counter() - started
    rows = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    labels = [single_token(tokenizer, " " + label) for label in args.labels.split(",")]
    answers, summary = score_file(rows, model, tokenizer, labels, args.batch_tokens)
    summary["load_seconds"] = loaded
    with args.answers.open("w") as handle:
        for answer in answers:
            handle.write(json.dumps(answer) + "\n")
    check = args.answers.with_name(args.answers.name + ".check.json")
    check.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
