"""End-to-end HTTP selection: latency percentiles and throughput at several concurrencies,
side by side with an embedding server (infinity-emb) answering ``/embeddings`` for the same
queries under the same load, and the import throughput against the model's own ``encode``.

Builds a pool of real tweet embeddings (MiniLM; topped up to the asked size with perturbed
copies) straight into a store in a data directory, starts ``mmdshot serve`` on loopback with
the real model, and drives ``POST /v1/pools/tweets/select`` with wrk (Debian package ``wrk``;
a Lua script rotates real held-out tweets as queries). The quick mode uses the hashing
embedder, a small pool and a small Python load loop, so the test suite can run it.

The peer is infinity-emb serving the same bundled MiniLM folder from disk, offline, started
by ``scripts/infinity.sh serve`` (its own virtual environment: ``MMDSHOT_INFINITY_VENV``, by
default ``.venv-infinity`` in the repository); when the script or its venv is missing, the
peer's entry says why instead of numbers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from app.config import Settings
from bench.embeddings import CACHE, tweet_embeddings
from bench.environment import save_result
from selector.embedding import BUNDLED_MODEL_NAME

POOL = "tweets"
LEVELS = (1, 8, 32, 64)
REPO = Path(__file__).resolve().parents[1]
IMPORT_SIZE = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_data_dir(data_dir: Path, size: int, quick: bool) -> list[str]:
    """Write a pool of ``size`` examples into ``data_dir``; returns held-out query texts."""
    if quick:
        rng = np.random.default_rng(0)
        texts = [f"synthetic example {i} about topic {i % 17}" for i in range(size + 20)]
        labels = [("negative", "neutral", "positive")[i % 3] for i in range(size + 20)]
        vectors = rng.standard_normal((size, 64)).astype(np.float32)
        queries, model = texts[size:], "hashing-64"
    else:
        tweets, real = tweet_embeddings()
        held = 200
        texts = [t.text for t in tweets[held:]]
        labels = [t.label for t in tweets[held:]]
        queries = [t.text for t in tweets[:held]]
        base = real[held:]
        repeats = -(-size // len(base))
        rng = np.random.default_rng(0)
        vectors = np.concatenate([base] * repeats)[:size]
        vectors[len(base) :] += 0.05 * rng.standard_normal(vectors[len(base) :].shape).astype(
            np.float32
        )
        texts = [
            f"{texts[i % len(texts)]} #{i // len(texts)}" if i >= len(texts) else texts[i]
            for i in range(size)
        ]
        labels = [labels[i % len(labels)] for i in range(size)]
        model = BUNDLED_MODEL_NAME
    write_pool(data_dir, texts, labels, vectors, model)
    return queries


def write_pool(
    data_dir: Path, texts: list[str], labels: list[str], vectors: np.ndarray, model: str
) -> None:
    """Store the pool ``tweets`` of ``len(vectors)`` examples (label as output) straight into
    the store in ``data_dir``, as ``model`` embedded them."""
    from app.store import PreparedExample, open_store
    from selector.embedding import content_hash

    size, dimension = vectors.shape
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    store = open_store(Settings(data_dir=data_dir))
    try:
        store.create_pool(POOL, "benchmark pool", model, dimension)
        chunk = 5_000
        for start in range(0, size, chunk):
            store.upsert(
                POOL,
                [
                    PreparedExample(
                        id=f"ex{i}",
                        input=texts[i],
                        output=labels[i],
                        label=labels[i],
                        metadata={},
                        content_hash=content_hash(json.dumps([texts[i], labels[i], labels[i]])),
                        token_count=len(texts[i].split()),
                        vector=vectors[i],
                    )
                    for i in range(start, min(size, start + chunk))
                ],
            )
    finally:
        store.close()


def start_server(
    data_dir: Path, quick: bool, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``mmdshot serve`` over ``data_dir`` on a free loopback port, with extra ``MMDSHOT_*``
    ``settings``, once ``/ready``; returns the process and its URL."""
    port = _free_port()
    # A queue deep enough for the highest concurrency: the benchmark measures latency under
    # load, not the 429s the default queue bound (16 waiting) answers beyond it.
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        MMDSHOT_EMBEDDER="hashing" if quick else "minilm",
        MMDSHOT_COMPUTE_QUEUE="64",
        **{f"MMDSHOT_{name.upper()}": value for name, value in settings.items()},
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not become ready")


@dataclass(frozen=True)
class Target:
    """What the load sends: a path, the body as a Lua expression of ``text`` (wrk) and the
    same body as JSON for a text (the Python loop)."""

    path: str
    lua: str
    body: Callable[[str], dict]


def select_target(k: int) -> Target:
    """A pool selection of the query ``text``."""
    return Target(
        f"/v1/pools/{POOL}/select",
        f"""'{{"query": "' .. text .. '", "k": {k}, "compare_baselines": false}}'""",
        lambda text: {"query": text, "k": k, "compare_baselines": False},
    )


PEER_TARGET = Target(
    "/embeddings",
    """'{"model": "minilm", "input": ["' .. text .. '"]}'""",
    lambda text: {"model": "minilm", "input": [text]},
)
"""The same query at the peer's OpenAI-style ``/embeddings``."""


def run_wrk(
    url: str, queries: list[str], target: Target, concurrency: int, seconds: int, hooks: str = ""
) -> tuple[str, Callable[[str], float]]:
    """wrk (2 threads at most) posting ``target``'s body for a distinct query per request, with
    the Lua ``hooks`` (``response``, ``done``; ``threads`` lists wrk's threads) after the
    script; returns wrk's output and its latency percentile in ms by label (``"99"``).

    Every request's query is distinct (the wrk thread's number and a counter are appended), so
    no cache answers: each request pays for its embedding. Each wrk thread has a Lua state of
    its own: with a counter alone, both threads sent the same texts."""
    texts = [json.dumps(q)[1:-1] for q in queries]  # JSON-escaped, without the quotes
    script = (
        "texts = {"
        + ",".join(json.dumps(t) for t in texts)
        + "}\n"
        + f"""
threads = {{}}
setup = function(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end
counter = 0
request = function()
  counter = counter + 1
  local text = texts[(counter % #texts) + 1] .. ' #' .. thread_id .. '-' .. counter
  local body = {target.lua}
  return wrk.format("POST", nil, {{["content-type"] = "application/json"}}, body)
end
"""
        + hooks
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    output = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(concurrency, 2)),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            handle.name,
            f"{url}{target.path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(handle.name).unlink()

    def percentile(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        assert match, output
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]
        return float(match.group(1)) * scale

    return output, percentile


def _wrk(url: str, queries: list[str], target: Target, concurrency: int, seconds: int) -> dict:
    output, percentile = run_wrk(url, queries, target, concurrency, seconds)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "requests_per_s": float(rate.group(1)) if rate else 0.0,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _python_load(
    url: str, queries: list[str], target: Target, concurrency: int, count: int
) -> dict:
    """A small closed-loop load for the quick mode (no wrk needed)."""
    with httpx.Client(timeout=60) as client:

        def one(i: int) -> float:
            body = target.body(f"{queries[i % len(queries)]} #{i}")
            started = time.perf_counter()
            response = client.post(f"{url}{target.path}", json=body)
            response.raise_for_status()
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = sorted(pool.map(one, range(count)))
        elapsed = time.perf_counter() - started
    return {
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "requests_per_s": count / elapsed,
        "non_2xx": 0,
    }


def _levels(url: str, queries: list[str], target: Target, quick: bool, seconds: int) -> dict:
    levels: dict[str, dict] = {}
    for concurrency in LEVELS:
        if quick or shutil.which("wrk") is None:
            levels[str(concurrency)] = _python_load(
                url, queries, target, min(concurrency, 4), 12 if quick else 50 * concurrency
            )
        else:
            levels[str(concurrency)] = _wrk(url, queries, target, concurrency, seconds)
    return levels


def start_infinity() -> tuple[subprocess.Popen[bytes] | None, str]:
    """infinity-emb on a free loopback port serving the bundled MiniLM (scripts/infinity.sh);
    ``(None, why)`` when it cannot run here."""
    script = REPO / "scripts" / "infinity.sh"
    if not script.is_file():
        return None, "scripts/infinity.sh is missing"
    port = _free_port()
    process = subprocess.Popen(
        ["bash", str(script), "serve", str(port)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900  # the first call installs its venv
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, f"scripts/infinity.sh serve exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    return None, "infinity did not answer /models within 900 s"


def peer(queries: list[str], quick: bool, seconds: int) -> dict:
    """infinity-emb's ``/embeddings`` under the same load levels, for the same queries."""
    if quick:
        return {"skipped": "the quick mode runs no peer (infinity-emb loads torch for a minute)"}
    process, url = start_infinity()
    if process is None:
        return {"skipped": url}
    try:
        warm = httpx.post(
            f"{url}/embeddings", json={"model": "minilm", "input": [queries[0]]}, timeout=120
        )
        warm.raise_for_status()
        dimension = len(warm.json()["data"][0]["embedding"])
        levels = _levels(url, queries, PEER_TARGET, quick, seconds)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "server": "infinity-emb 0.0.77 (torch, CPU)",
        "dimension": dimension,
        "concurrency": levels,
    }


def import_throughput(quick: bool) -> dict:
    """Examples/s of a ``mmdshot import`` of real tweets through the CLI into a fresh pool,
    against the model's own ``encode`` (sentence-transformers) of the same texts, in this run."""
    from bench.data import unique_tweets

    count = 200 if quick else IMPORT_SIZE
    tweets = unique_tweets()[:count]
    texts = [tweet.text for tweet in tweets]
    data_dir = CACHE / f"import-data{'-quick' if quick else ''}"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    lines = data_dir / "tweets.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"id": f"t{n}", "input": t.text, "output": t.label, "label": t.label}) + "\n"
            for n, t in enumerate(tweets)
        )
    )
    process, url = start_server(data_dir / "data", quick)
    try:
        started = time.perf_counter()
        answer = subprocess.run(
            [sys.executable, "-m", "app.cli", "import", "--url", url, "--json", "imp", str(lines)],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        import_seconds = time.perf_counter() - started
        inserted = json.loads(answer.stdout)["inserted"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    if quick:
        from selector import HashingEmbedder

        encoder, name = HashingEmbedder(64).embed, "hashing-64"
    else:
        from selector import SentenceTransformerEmbedder

        encoder, name = SentenceTransformerEmbedder().embed, "sentence-transformers encode"
    encoder(texts[:64])  # warm
    started = time.perf_counter()
    encoder(texts)
    encode_seconds = time.perf_counter() - started
    return {
        "examples": count,
        "inserted": inserted,
        "import_s": import_seconds,
        "import_examples_per_s": count / import_seconds,
        "reference": name,
        "encode_s": encode_seconds,
        "encode_examples_per_s": count / encode_seconds,
        "ratio": (count / import_seconds) / (count / encode_seconds),
    }


def run(size: int, quick: bool, k: int = 8, seconds: int = 20) -> dict:
    data_dir = CACHE / f"http-data-{size}{'-quick' if quick else ''}"
    CACHE.mkdir(exist_ok=True)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    queries = build_data_dir(data_dir, size, quick)
    process, url = start_server(data_dir, quick)
    try:
        # Measure the steady state: large pools get their prefilter index in the background.
        deadline = time.monotonic() + 900
        while True:
            warm = httpx.post(
                f"{url}/v1/pools/{POOL}/select", json={"query": queries[0], "k": k}, timeout=600
            )
            warm.raise_for_status()
            if warm.json()["prefiltered"] or size <= 50_000 or time.monotonic() > deadline:
                break
            time.sleep(2)
        # The stages of a steady request: of 21 more of the warm-up query, the one of median
        # total (the first prefiltered one pays one-off costs: its scan took 10 ms, 3 ms after).
        repeats = [
            httpx.post(
                f"{url}/v1/pools/{POOL}/select", json={"query": queries[0], "k": k}, timeout=600
            ).json()["timings"]
            for _ in range(21)
        ]
        timings = sorted(repeats, key=lambda stages: stages["total_ms"])[len(repeats) // 2]
        levels = _levels(url, queries, select_target(k), quick, seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    infinity = peer(queries, quick, seconds)
    ratio = {
        level: levels[level]["requests_per_s"] / infinity["concurrency"][level]["requests_per_s"]
        for level in levels
        if "concurrency" in infinity and infinity["concurrency"][level]["requests_per_s"] > 0
    }
    return {
        "pool_size": size,
        "k": k,
        "tool": "a Python thread loop" if quick or shutil.which("wrk") is None else "wrk 4.1",
        "duration_s": seconds,
        "concurrency": levels,
        "warm_request_timings_ms": timings,
        "prefiltered": warm.json()["prefiltered"],
        "embedding_backend": Settings().embedding_backend,
        "batch_window_ms": Settings().batch_window_ms,
        "peer": infinity,
        "ratio_to_peer": ratio,
        "import": import_throughput(quick),
    }


def write(path: Path, quick: bool = False) -> dict:
    """Run (tiny sizes when ``quick``) and write the JSON result to ``path``."""
    result = run(size=400 if quick else 100_000, quick=quick)
    save_result(path, result)
    return result
