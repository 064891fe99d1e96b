"""In-context accuracy against the strongest peers, on two tasks (part of ``python -m bench icl``).

Every method fills the same prompt for the same test tweets from the same pool, with the same
LM (SmolLM2-135M-Instruct) and one ordering rule (by cosine similarity to the query, most
similar last):

- knn, mmdshot's joint kernel (the default for a labelled pool) and input-only MMD (the
  default without labels), through :func:`selector.select_batch`;
- Set-BSR (bench/coverage.py: greedy BERTScore-recall coverage on MiniLM token embeddings);
- DPP (OpenICL's DPPRetriever on the same vectors, bench/peers.py);
- MMR at the library's defaults and MMR tuned: lambda and the candidate count chosen by LM
  accuracy on the validation split (never the test split).

Two tasks from the offline tweets (bench/data.py): *sentiment* (negative / neutral / positive)
and *opinion* (does the tweet take a side? ``opinion`` for negative or positive, ``neutral``
otherwise), each with its own seeded sample, pool, validation and test split.

Per test query the chosen set's MMD to the query (softmax kernel, tau 0.2, input space: one
yardstick for every method) is recorded with whether the LM answered correctly, for the bound
as a signal (AUC of MMD predicting an error, and a reliability table).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import coverage
from bench.embeddings import CACHE, sampled_tweet_embeddings
from bench.environment import environment, save_result
from bench.icl import (
    HEADER,
    LABELS,
    LanguageModel,
    Split,
    Task,
    answers,
    most_similar_last,
    paired_difference,
    wilson,
)
from bench.lm import single_token
from bench.peers import PrecomputedDPPRetriever
from selector import Pool, select, select_batch

SIGNAL_TAU = 0.2  # the kernel of the MMD recorded per query for every method
DPP_CANDIDATES = 50

OPINION = Task(
    "opinion",
    ("neutral", "opinion"),
    "Say whether each tweet about self-driving cars takes a side (opinion) or is neutral.\n\n",
    field="Stance",
)
SENTIMENT = Task("sentiment", LABELS, HEADER)


def opinion_label(sentiment: str) -> str:
    return "neutral" if sentiment == "neutral" else "opinion"


@dataclass(frozen=True)
class Config:
    sample: int  # tweets embedded (a seeded sample of the corpus)
    pool_size: int
    validation: int
    test: int
    ks: tuple[int, ...]
    tuning_k: int
    mmr_lambdas: tuple[float, ...]
    mmr_fetch: tuple[int, ...]
    seed: int = 2
    methods: tuple[str, ...] = (
        "knn",
        "mmdshot joint",
        "mmdshot input-only",
        "set-bsr",
        "dpp",
        "mmr",
        "mmr tuned",
    )
    tasks: tuple[str, ...] = ("sentiment", "opinion")
    task_ks: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per-task override
    prefix: bool = True  # the rows with a shared prefix (sentiment, 8 demonstrations)
    # The first this many of the validation and test splits are evaluated (None: all): the
    # splits themselves, and the embeddings cached for them, stay as they are.
    validation_used: int | None = None
    test_used: int | None = None


FULL = Config(
    sample=2600,
    pool_size=1000,
    validation=80,
    test=100,
    ks=(8, 4, 16),  # the order they run in: the headline k first
    tuning_k=8,
    mmr_lambdas=(0.3, 0.5, 0.7, 0.9),
    mmr_fetch=(20, 50, 100),
)
QUICK = Config(
    sample=400,
    pool_size=200,
    validation=2,
    test=3,
    ks=(2,),
    tuning_k=2,
    mmr_lambdas=(0.5, 0.9),
    mmr_fetch=(20,),
    seed=1,
    methods=("knn", "mmdshot joint", "set-bsr", "dpp", "mmr tuned"),
)


def pinned_supported() -> bool:
    """Whether the library's selection takes ``pinned=`` (the conditioned greedy)."""
    import dataclasses

    from selector import api

    return any(f.name == "pinned" for f in dataclasses.fields(api.SelectOptions))


def default_backend() -> str:
    """llama.cpp where llama-cpp-python is installed, else the transformers scorer."""
    return "llama.cpp" if importlib.util.find_spec("llama_cpp") is not None else "transformers"


# ----------------------------------------------------------------------------- the data


@dataclass
class TaskData:
    task: Task
    pool: Split
    validation: Split
    test: Split
    pool_tokens: coverage.TokenSet
    validation_tokens: coverage.TokenSet
    test_tokens: coverage.TokenSet
    idf: dict[int, float]

    @property
    def library_pool(self) -> Pool:
        return Pool.from_arrays(self.pool.vectors, labels=self.pool.labels, normalized=True)


def task_data(task: Task, config: Config, clip: Callable[[str], str], seed: int) -> TaskData:
    tweets, vectors = sampled_tweet_embeddings(config.sample, seed)
    order = np.random.default_rng(seed).permutation(len(tweets))
    bounds = np.cumsum([0, config.pool_size, config.validation, config.test])
    relabel = opinion_label if task.name == "opinion" else str

    def part(i: int) -> Split:
        rows = order[bounds[i] : bounds[i + 1]]
        return Split(
            [clip(tweets[r].text) for r in rows],
            [relabel(tweets[r].label) for r in rows],
            vectors[rows],
        )

    pool, validation, test = part(0), part(1), part(2)
    tokens = token_sets(pool.texts + validation.texts + test.texts, config, seed)
    cut = np.cumsum([0, len(pool.texts), len(validation.texts), len(test.texts)])
    used = [config.pool_size, config.validation_used, config.test_used]
    stops = [cut[i + 1] if used[i] is None else cut[i] + used[i] for i in range(3)]
    pieces = [subset(tokens, range(cut[i], stops[i])) for i in range(3)]
    validation = validation.take(range(stops[1] - cut[1]))
    test = test.take(range(stops[2] - cut[2]))
    return TaskData(
        task,
        pool,
        validation,
        test,
        pieces[0],
        pieces[1],
        pieces[2],
        coverage.idf_weights(pieces[0]),
    )


def token_sets(texts: list[str], config: Config, seed: int) -> coverage.TokenSet:
    """MiniLM token embeddings of ``texts``, cached on disk per sample."""
    path = CACHE / f"tokens-minilm-{config.sample}-{config.pool_size}-seed-{seed}.npz"
    if path.exists():
        stored = np.load(path)
        if int(stored["count"]) == len(texts):
            return coverage.TokenSet(stored["vectors"], stored["ids"], stored["offsets"])
    tokens = coverage.embed_tokens(texts)
    CACHE.mkdir(exist_ok=True)
    np.savez(path, vectors=tokens.vectors, ids=tokens.ids, offsets=tokens.offsets, count=len(texts))
    return tokens


def subset(tokens: coverage.TokenSet, rows: Sequence[int]) -> coverage.TokenSet:
    return coverage.token_set(
        [(tokens.vectors[tokens.rows(i)], tokens.ids[tokens.rows(i)]) for i in rows]
    )


# ----------------------------------------------------------------------------- selection


def choose(
    name: str,
    k: int,
    data: TaskData,
    queries: Split,
    query_tokens: coverage.TokenSet,
    mmr: dict[str, Any] | None = None,
) -> tuple[list[list[int]], list[dict[str, float]] | None]:
    """Each query's chosen pool rows (any order) and, for mmdshot's methods, the result's
    ``mmd`` and ``bound``."""
    if name in ("knn", "mmr", "mmr tuned", "mmdshot joint", "mmdshot input-only"):
        method = "mmd" if name.startswith("mmdshot") else name.split()[0]
        options: dict[str, Any] = {}
        if name == "mmdshot input-only":
            options["joint"] = False
        if name == "mmr tuned":
            options.update(mmr or {})
        results = select_batch(data.library_pool, queries.vectors, k, method=method, **options)
        reported = [{"mmd": r.mmd, "bound": r.bound} for r in results] if method == "mmd" else None
        return [list(r.indices) for r in results], reported
    if name == "input-only tuned":
        setting = mmr or {}
        if setting.get("weight", 1.0) == 1.0:
            results = select_batch(
                data.library_pool, queries.vectors, k, joint=False, tau=setting["tau"]
            )
            return [list(r.indices) for r in results], [
                {"mmd": r.mmd, "bound": r.bound} for r in results
            ]
        return [
            weighted_greedy(data.pool.vectors, q, k, setting["tau"], setting["weight"])
            for q in queries.vectors
        ], None
    if name == "set-bsr":
        return coverage.set_bsr(data.pool_tokens, query_tokens, k, data.idf), None
    if name == "dpp":
        retriever = PrecomputedDPPRetriever(
            np.ascontiguousarray(data.pool.vectors, dtype=np.float32),
            k,
            candidates=max(DPP_CANDIDATES, k),
        )
        return retriever.select(np.ascontiguousarray(queries.vectors, dtype=np.float32)), None
    raise ValueError(f"unknown method {name}")


def set_mmd(pool_vectors: np.ndarray, chosen: Sequence[int], query: np.ndarray) -> float:
    """MMD of the uniform set ``chosen`` to the point ``query`` under the softmax kernel."""
    x = pool_vectors[list(chosen)].astype(np.float64)
    q = query.astype(np.float64)
    within = np.exp((x @ x.T - 1) / SIGNAL_TAU).mean()
    cross = np.exp((x @ q - 1) / SIGNAL_TAU).mean()
    return float(np.sqrt(max(within - 2 * cross + 1.0, 0.0)))


def evaluate(
    lm: LanguageModel,
    name: str,
    k: int,
    data: TaskData,
    log: Callable[[str], None],
    mmr: dict[str, Any] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    chosen, reported = choose(name, k, data, data.test, data.test_tokens, mmr)
    selection_ms = 1000 * (time.perf_counter() - started) / len(chosen)
    ordered = most_similar_last(chosen, data.pool.vectors, data.test.vectors)
    correct, purity, predictions = answers(
        lm, ordered, data.pool, data.test, f"{data.task.name} {name}@{k}", log, data.task
    )
    hits = int(np.sum(correct))
    row: dict[str, Any] = {
        "task": data.task.name,
        "method": name,
        "k": k,
        "n": len(correct),
        "accuracy": hits / len(correct),
        "ci95": list(wilson(hits, len(correct))),
        "label_purity": float(np.mean(purity)),
        "selection_ms_per_query": selection_ms,
        "predicted_share": {
            label: predictions.count(label) / len(predictions) for label in data.task.labels
        },
        "correct": "".join("1" if c else "0" for c in correct),
        "mmd": [
            set_mmd(data.pool.vectors, c, q) for c, q in zip(chosen, data.test.vectors, strict=True)
        ],
    }
    if mmr:
        row["options"] = mmr
    if reported is not None:
        row["reported_bound"] = [r["bound"] for r in reported]
    return row


def tune_mmr(data: TaskData, config: Config, log: Callable[[str], None]) -> dict[str, Any]:
    """(lambda, fetch_k) by the validation split's mean label purity at ``tuning_k`` (no LM:
    across methods purity tracks LM accuracy, and on this shared CPU the LM budget goes to
    the test split): the best wins, ties go to the larger lambda, then the smaller fetch_k."""
    scores: dict[str, float] = {}
    for mmr_lambda in config.mmr_lambdas:
        for fetch_k in config.mmr_fetch:
            options = {"mmr_lambda": mmr_lambda, "fetch_k": fetch_k}
            chosen, _ = choose(
                "mmr tuned", config.tuning_k, data, data.validation, data.validation_tokens, options
            )
            key = f"{mmr_lambda}/{fetch_k}"
            scores[key] = purity(chosen, data.pool.labels, data.validation.labels)
    best = max(
        scores,
        key=lambda key: (scores[key], float(key.split("/")[0]), -int(key.split("/")[1])),
    )
    lambda_text, fetch_text = best.split("/")
    return {
        "k": config.tuning_k,
        "n": len(data.validation.texts),
        "score": "validation label purity",
        "purity": scores,
        "chosen": {"mmr_lambda": float(lambda_text), "fetch_k": int(fetch_text)},
    }


# ----------------------------------------------------------------------------- analysis


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties half: the ROC AUC."""
    s = np.asarray(scores, dtype=float)
    p = np.asarray(positives, dtype=bool)
    if p.all() or not p.any():
        return None
    from scipy.stats import rankdata

    ranks = rankdata(s)
    positives_count, negatives_count = int(p.sum()), int((~p).sum())
    return float(
        (ranks[p].sum() - positives_count * (positives_count + 1) / 2)
        / (positives_count * negatives_count)
    )


def reliability(scores: Sequence[float], correct: Sequence[bool], bins: int = 5) -> list[dict]:
    """Accuracy per quantile bin of ``scores`` (lowest MMD first)."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(correct, dtype=bool)
    order = np.argsort(s, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append(
                {
                    "mmd_low": float(s[part].min()),
                    "mmd_high": float(s[part].max()),
                    "n": len(part),
                    "accuracy": float(c[part].mean()),
                }
            )
    return out


def signal(run: dict[str, Any]) -> dict[str, Any]:
    """How well the chosen set's MMD predicts a wrong answer, for one run."""
    wrong = [c == "0" for c in run["correct"]]
    out = {
        "auc_mmd_predicts_error": auc(run["mmd"], wrong),
        "reliability": reliability(run["mmd"], [not w for w in wrong]),
    }
    if "reported_bound" in run:
        out["auc_bound_predicts_error"] = auc(run["reported_bound"], wrong)
    return out


def versus(runs: list[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Each method's accuracy minus ``reference``'s on the same task, k and test tweets."""
    base = {(r["task"], r["k"]): r["correct"] for r in runs if r["method"] == reference}
    out = []
    for r in runs:
        key = (r["task"], r["k"])
        if key in base and r["method"] != reference and r["k"] > 0:
            difference, low, high = paired_difference(r["correct"], base[key])
            out.append(
                {
                    "task": r["task"],
                    "method": r["method"],
                    "k": r["k"],
                    "reference": reference,
                    "difference": difference,
                    "ci95": [low, high],
                }
            )
    return out


# ----------------------------------------------------------------------------- the run


def earlier_rows(path: Path, result: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The rows (and zero-shot answers, under method ``"zero"``) of an earlier run written to
    ``path`` with the same settings (backend, sizes, ordering, and the same embeddings bit for
    bit: another CPU rounds MiniLM differently, which moves some selections), by (task, method,
    k); each keeps the date it was measured on (``measured``). Rows of other settings are never
    reused."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = (
        "backend",
        "sample",
        "pool_size",
        "validation_size",
        "test_size",
        "ordering",
        "embeddings_sha256",
    )
    if any(old.get(key) != result[key] for key in same):
        return {}
    date = old.get("environment", {}).get("date")
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in [*old.get("runs", []), *old.get("prefix_runs", [])]:
        rows[(row["task"], row["method"], row["k"])] = {"measured": date, **row}
    for name, info in old.get("tasks", {}).items():
        if "zero_shot" in info:
            rows[(name, "zero", 0)] = {"measured": date, **info["zero_shot"]}
    return rows


def run(
    config: Config,
    path: Path,
    log: Callable[[str], None],
    backend: str,
    resume: bool = False,
) -> dict[str, Any]:
    """Every row of ``config``; with ``resume``, rows an earlier run of the same settings wrote
    to ``path`` are kept as they are (with their date) instead of being scored again."""
    quick = config == QUICK
    tasks = {"sentiment": SENTIMENT, "opinion": OPINION}
    result: dict[str, Any] = {
        "backend": backend,
        "sample": config.sample,
        "pool_size": config.pool_size,
        "validation_size": config.validation_used or config.validation,
        "test_size": config.test_used or config.test,
        "signal_kernel": f"softmax, tau {SIGNAL_TAU}, input space",
        "dpp_candidates": DPP_CANDIDATES,
        "ordering": "by cosine similarity to the query, ascending (most similar last)",
        "tasks": {},
        "runs": [],
    }
    _, vectors = sampled_tweet_embeddings(config.sample, config.seed)
    result["embeddings_sha256"] = hashlib.sha256(
        np.ascontiguousarray(vectors, dtype=np.float32).tobytes()
    ).hexdigest()
    earlier = earlier_rows(path, result) if resume else {}
    cache = CACHE / f"icl-peers-{backend}{'-quick' if quick else ''}.jsonl"
    lm = LanguageModel(cache, backend=backend)
    prepared: dict[str, tuple[TaskData, dict[str, Any], dict[str, float]]] = {}
    for task_name in config.tasks:
        task = tasks[task_name]
        data = task_data(task, config, lm.clip, config.seed)
        tuned = tune_mmr(data, config, log)
        study = input_only_study(data, config.task_ks.get(task_name, config.ks))
        chosen_name = study["chosen"]
        setting = {
            "tau": float(chosen_name.rsplit(" ", 1)[1]),
            "weight": 1.0
            if chosen_name.startswith("library")
            else float(chosen_name.split(",")[0].split()[1]),
        }
        study["setting"] = setting
        log(f"{task_name}: mmr tuning chose {tuned['chosen']}, input-only study {chosen_name}")
        result["model"] = lm.model_name
        result["tasks"][task_name] = {
            "labels": list(task.labels),
            "header": task.header,
            "field": task.field,
            "split_seed": config.seed,
            "test_label_share": {
                label: data.test.labels.count(label) / len(data.test.labels)
                for label in task.labels
            },
            "mmr_tuning": tuned,
            "input_only_study": study,
        }
        prepared[task_name] = (data, tuned["chosen"], setting)
    # The headline k on every task first, then the prefix rows, then the other ks: a run cut
    # short still leaves the most informative rows.
    steps = [
        (t, k) for k in config.ks for t in config.tasks if k in config.task_ks.get(t, config.ks)
    ]
    for task_name, k in steps:
        data, mmr_setting, setting = prepared[task_name]
        task = data.task
        # One model for both tasks; the prompts differ (the header), so their cache keys do.
        lm.label_tokens = [single_token(lm.tokenizer, " " + label) for label in task.labels]
        info = result["tasks"][task_name]
        if (task_name, "zero", 0) in earlier:
            info["zero_shot"] = earlier[(task_name, "zero", 0)]
        if "zero_shot" not in info:
            zero = answers(
                lm, [[] for _ in data.test.texts], data.pool, data.test, "zero", log, task
            )
            hits = int(np.sum(zero[0]))
            info["zero_shot"] = {
                "accuracy": hits / len(zero[0]),
                "ci95": list(wilson(hits, len(zero[0]))),
            }
        methods = [
            m
            for m in (*config.methods, "input-only tuned")
            if m != "input-only tuned" or k == config.tuning_k
        ]
        # knn and the joint default first, then the prefix rows beside them, then the peers.
        for name in [m for m in methods if m in ("knn", "mmdshot joint")]:
            _add_run(result, earlier, lm, name, k, data, log, path, None)
        if k == config.tuning_k and task_name == "sentiment" and config.prefix:
            if pinned_supported():
                result["prefix_runs"] = []
                for size in PREFIX_SIZES:
                    key = (task_name, f"prefix {size} + slice {PREFIX_TOTAL - size}", PREFIX_TOTAL)
                    row = earlier.get(key) or {
                        **evaluate_prefix(lm, data, size, log),
                        "measured": _now(),
                    }
                    result["prefix_runs"].append(row)
                    log(f"{row['method']}: {row['accuracy']:.3f}")
                    _record(result, lm, path)
            else:
                log("the library has no pinned= yet: no prefix rows")
        for name in [m for m in methods if m not in ("knn", "mmdshot joint")]:
            options = {"mmr tuned": mmr_setting, "input-only tuned": setting}.get(name)
            _add_run(result, earlier, lm, name, k, data, log, path, options)
    _record(result, lm, path)
    return result


def _add_run(
    result: dict[str, Any],
    earlier: dict[tuple[str, str, int], dict[str, Any]],
    lm: LanguageModel,
    name: str,
    k: int,
    data: TaskData,
    log: Callable[[str], None],
    path: Path,
    options: dict[str, Any] | None,
) -> None:
    """One method's row at ``k``: the earlier run's where it has one, else scored now."""
    outcome = earlier.get((data.task.name, name, k))
    if outcome is None:
        outcome = evaluate(lm, name, k, data, log, options)
        outcome["signal"] = signal(outcome)
        outcome["measured"] = _now()
    result["runs"].append(outcome)
    log(f"{data.task.name} {name}@{k}: {outcome['accuracy']:.3f}")
    _record(result, lm, path)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _record(result: dict[str, Any], lm: LanguageModel, path: Path) -> None:
    if lm.forward_seconds:
        result["forward_ms_median"] = 1000 * float(np.median(lm.forward_seconds))
        result["prompt_tokens_median"] = float(np.median(lm.prompt_tokens))
    if lm.batched_seconds:
        result["batched_ms_per_prompt_median"] = 1000 * float(np.median(lm.batched_seconds))
    result["versus_joint"] = versus(result["runs"], "mmdshot joint")
    result["versus_knn"] = versus(result["runs"], "knn")
    save_result(path, result)


def plot(result: dict[str, Any], accuracy_path: Path, reliability_path: Path) -> None:
    """Accuracy by method and k per task, and accuracy per MMD fifth per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in result["tasks"] if any(r["task"] == t for r in result["runs"])]
    figure, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        runs = [r for r in result["runs"] if r["task"] == task]
        names = list(dict.fromkeys(r["method"] for r in runs))
        ks = sorted({r["k"] for r in runs})
        width = 0.8 / len(ks)
        for offset, k in enumerate(ks):
            rows = {r["method"]: r for r in runs if r["k"] == k}
            present = [
                (i + (offset - (len(ks) - 1) / 2) * width, rows[n])
                for i, n in enumerate(names)
                if n in rows
            ]
            axis.bar(
                [p for p, _ in present],
                [r["accuracy"] for _, r in present],
                width,
                yerr=[
                    [r["accuracy"] - r["ci95"][0] for _, r in present],
                    [r["ci95"][1] - r["accuracy"] for _, r in present],
                ],
                capsize=2,
                label=f"k={k}",
            )
        axis.axhline(result["tasks"][task]["zero_shot"]["accuracy"], color="grey", ls="--")
        axis.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        axis.set_ylim(0, 1)
        axis.set_title(f"{task}: {result['test_size']} test tweets (zero-shot dashed)")
        axis.set_ylabel("accuracy (95 % Wilson interval)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    accuracy_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(accuracy_path, dpi=110)
    plt.close(figure)
    figure, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        runs = [r for r in result["runs"] if r["task"] == task]
        k = 8 if any(r["k"] == 8 for r in runs) else max(r["k"] for r in runs)
        for r in (r for r in runs if r["k"] == k):
            bins = r["signal"]["reliability"]
            axis.plot(
                range(1, len(bins) + 1),
                [b["accuracy"] for b in bins],
                marker="o",
                label=r["method"],
            )
        axis.set_xlabel("fifth of the test set by the chosen set's MMD (1 = lowest)")
        axis.set_ylabel("accuracy")
        axis.set_ylim(0, 1)
        axis.set_title(f"{task}, k = {k}")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(reliability_path, dpi=110)
    plt.close(figure)


def write(
    path: Path, quick: bool = False, backend: str | None = None, resume: bool = False
) -> dict[str, Any]:
    def log(message: str) -> None:
        print(message, flush=True)

    chosen = backend or ("transformers" if quick else default_backend())
    result = run(QUICK if quick else FULL, path, log, chosen, resume)
    if quick:
        plot(result, path.parent / "icl-peers-quick.png", path.parent / "icl-reliability-quick.png")
    else:
        images = path.parent.parent / "img"
        plot(result, images / "icl-peers.png", images / "icl-reliability.png")
    return result


def compare_backends(
    path: Path, count: int, timed: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """The same ``count`` prompts (the sentiment task's knn at k = 8 on its first test
    tweets) through both backends: how often their predicted labels agree and how far their
    log-probabilities are (the float32 answers come from the peers run's cache where it has
    them); and, on the first ``timed`` prompts, both forwards computed afresh, interleaved so
    that both see the same machine load, one thread each."""
    import torch

    reference = LanguageModel(CACHE / "icl-peers-transformers.jsonl", backend="transformers")
    fast = LanguageModel(CACHE / "icl-peers-llama.cpp.jsonl", backend="llama.cpp")
    torch.set_num_threads(1)
    data = task_data(SENTIMENT, FULL, reference.clip, FULL.seed)
    queries = data.test.take(range(count))
    chosen, _ = choose("knn", 8, data, queries, data.test_tokens)
    ordered = most_similar_last(chosen, data.pool.vectors, queries.vectors)
    agree, differences, slow_s, fast_s = 0, [], [], []
    for row, indices in enumerate(ordered):
        shots = [(data.pool.texts[i], data.pool.labels[i]) for i in indices]
        prompt = SENTIMENT.prompt(shots, queries.texts[row])
        if row < timed:
            a = reference.forward(prompt)
            b = fast.forward(prompt)
            slow_s.append(reference.forward_seconds[-1])
            fast_s.append(fast.forward_seconds[-1])
        else:
            a = reference.label_logprobs(prompt)
            b = fast.label_logprobs(prompt)
        agree += int(np.argmax(a) == np.argmax(b))
        differences.append(float(np.max(np.abs(np.subtract(a, b)))))
        if (row + 1) % 25 == 0:
            log(f"backends: {row + 1}/{count}, agree {agree}")
    result = {
        "prompts": count,
        "argmax_agree": agree,
        "argmax_agree_share": agree / count,
        "max_abs_logprob_diff": max(differences),
        "median_abs_logprob_diff": float(np.median(differences)),
        "timed_prompts": len(slow_s),
        "timed_prompt_tokens_median": float(np.median(reference.prompt_tokens)),
        "transformers_ms_median": 1000 * float(np.median(slow_s)),
        "llama_cpp_ms_median": 1000 * float(np.median(fast_s)),
        "speedup_median": float(np.median(np.divide(slow_s, fast_s))),
        "threads_each": 1,
        "environment": environment(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


# ----------------------------------------------------------------------------- input-only


def weighted_greedy(
    pool_vectors: np.ndarray, query: np.ndarray, k: int, tau: float, weight: float
) -> list[int]:
    """Greedy minimisation of ``weight / j^2 sum_{S} k(x_a, x_b) - 2 / j sum_S k(x_a, q)``
    (softmax kernel): ``weight = 1`` is the MMD greedy, ``0`` is knn; in between, the
    redundancy term counts less."""
    affinity = np.exp((pool_vectors @ query - 1) / tau)
    redundancy = np.zeros(len(pool_vectors))
    within, towards = 0.0, 0.0
    chosen: list[int] = []
    for step in range(1, k + 1):
        score = weight * (within + 2 * redundancy + 1) / step**2 - 2 * (towards + affinity) / step
        score[chosen] = np.inf
        best = int(np.argmin(score))
        chosen.append(best)
        within += 2 * redundancy[best] + 1
        towards += affinity[best]
        redundancy += np.exp((pool_vectors @ pool_vectors[best] - 1) / tau)
    return chosen


def purity(chosen: Sequence[Sequence[int]], pool_labels: list[str], gold: list[str]) -> float:
    shares = [
        np.mean([pool_labels[i] == g for i in rows]) for rows, g in zip(chosen, gold, strict=True)
    ]
    return float(np.mean(shares))


STUDY_TAUS = (0.02, 0.05, 0.1, 0.2, 0.5)
STUDY_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


def input_only_study(data: TaskData, ks: Sequence[int]) -> dict[str, Any]:
    """Where input-only MMD loses purity to knn: the validation split's mean label purity
    (no LM: across methods it tracks LM accuracy closely) for the library's input-only
    selection by tau, for knn, and for the greedy with the redundancy term down-weighted,
    at each k. The best setting over all ks (mean purity; ties to the larger weight, then
    the larger tau) is what the test split then checks with the LM."""
    queries = data.validation
    pool = data.library_pool
    rows: dict[str, dict[str, float]] = {}
    for k in ks:
        knn = select_batch(pool, queries.vectors, k, method="knn")
        rows.setdefault("knn", {})[str(k)] = purity(
            [r.indices for r in knn], data.pool.labels, queries.labels
        )
        for tau in STUDY_TAUS:
            results = select_batch(pool, queries.vectors, k, joint=False, tau=tau)
            rows.setdefault(f"library tau {tau}", {})[str(k)] = purity(
                [r.indices for r in results], data.pool.labels, queries.labels
            )
            for weight in STUDY_WEIGHTS[1:-1]:
                chosen = [
                    weighted_greedy(data.pool.vectors, q, k, tau, weight) for q in queries.vectors
                ]
                rows.setdefault(f"weight {weight}, tau {tau}", {})[str(k)] = purity(
                    chosen, data.pool.labels, queries.labels
                )
    mean = {name: float(np.mean(list(values.values()))) for name, values in rows.items()}
    candidates = [name for name in mean if name != "knn"]

    def order(name: str) -> tuple[float, float, float]:
        weight = 1.0 if name.startswith("library") else float(name.split(",")[0].split()[1])
        return mean[name], weight, float(name.rsplit(" ", 1)[1])

    best = max(candidates, key=order)
    return {"n": len(queries.texts), "purity": rows, "mean_purity": mean, "chosen": best}


# ----------------------------------------------------------------------------- prefix rows

PREFIX_TOTAL = 8
PREFIX_SIZES = (4, 6, 8)


def prefix_block(data: TaskData, size: int) -> list[int]:
    """``size`` pool rows chosen by MMD to the traffic sample (the validation split, never
    the test split), in the order the library gives them for a prompt (``prompt_order``, most
    relevant to the traffic last), as the service renders a prefix."""
    result = select(data.library_pool, data.validation.vectors, size)
    return list(result.prompt_order)


def slices(data: TaskData, prefix: list[int], size: int) -> list[list[int]]:
    """Each test query's slice of ``size`` rows chosen by the conditioned greedy around the
    pinned ``prefix`` (pinned rows never re-chosen)."""
    if size == 0:
        return [[] for _ in data.test.texts]
    results = select_batch(data.library_pool, data.test.vectors, size, pinned=prefix)
    return [[i for i in r.indices if i not in prefix] for r in results]


def evaluate_prefix(
    lm: LanguageModel, data: TaskData, size: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Prefix of ``size`` + slice of ``PREFIX_TOTAL - size``: accuracy, and the share of the
    prompt's tokens (and of its demonstrations' tokens) that sit in the shared prefix."""
    prefix = prefix_block(data, size)
    started = time.perf_counter()
    chosen = slices(data, prefix, PREFIX_TOTAL - size)
    selection_ms = 1000 * (time.perf_counter() - started) / len(chosen)
    ordered = most_similar_last(chosen, data.pool.vectors, data.test.vectors)
    shots = [(data.pool.texts[i], data.pool.labels[i]) for i in prefix]
    block = data.task.prompt(shots, "")[: -len(f"Tweet: \n{data.task.field}:")]
    block_tokens = len(lm.tokenizer(block).input_ids)
    header_tokens = len(lm.tokenizer(data.task.header).input_ids)
    correct, shares, demo_shares, predictions, purity = [], [], [], [], []
    for row, indices in enumerate(ordered):
        demonstrations = shots + [(data.pool.texts[i], data.pool.labels[i]) for i in indices]
        prompt = data.task.prompt(demonstrations, data.test.texts[row])
        if not prompt.startswith(block):
            raise AssertionError("the prefix block must open every prompt byte for byte")
        logprobs = lm.label_logprobs(prompt)
        predictions.append(data.task.labels[int(np.argmax(logprobs))])
        correct.append(predictions[-1] == data.test.labels[row])
        purity.append(
            float(np.mean([data.pool.labels[i] == data.test.labels[row] for i in prefix + indices]))
        )
        total = len(lm.tokenizer(prompt).input_ids)
        query_tokens = len(lm.tokenizer(data.task.prompt([], data.test.texts[row])).input_ids)
        shares.append(block_tokens / total)
        demo_shares.append((block_tokens - header_tokens) / (total - query_tokens))
        if (row + 1) % 50 == 0:
            log(f"  prefix {size}: {row + 1}/{len(ordered)}")
    hits = int(np.sum(correct))
    return {
        "task": data.task.name,
        "method": f"prefix {size} + slice {PREFIX_TOTAL - size}",
        "k": PREFIX_TOTAL,
        "n": len(correct),
        "accuracy": hits / len(correct),
        "ci95": list(wilson(hits, len(correct))),
        "correct": "".join("1" if c else "0" for c in correct),
        "label_purity": float(np.mean(purity)),
        "predicted_share": {
            label: predictions.count(label) / len(predictions) for label in data.task.labels
        },
        "prefix": prefix,
        "prefix_tokens": block_tokens,
        "cached_prompt_share": float(np.mean(shares)),
        "cached_demonstration_share": float(np.mean(demo_shares)),
        "prompt_tokens_mean": float(np.mean([block_tokens / s for s in shares])),
        "selection_ms_per_query": selection_ms,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.icl_peers")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=("transformers", "llama.cpp"))
    parser.add_argument("--results", type=Path, default=Path("docs/results/icl-peers.json"))
    parser.add_argument(
        "--compare-backends", type=int, metavar="N", help="only score N prompts with both"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows an earlier run of the same settings wrote to --results",
    )
    args = parser.parse_args()
    if args.compare_backends:
        compare_backends(
            args.results.with_name("icl-lm-backends.json"), args.compare_backends, 20, print
        )
    else:
        write(args.results, quick=args.quick, backend=args.backend, resume=args.resume)
