"""Any embedding (issue 18): pools of the client's own vectors, a local model per pool, and a
remote OpenAI-compatible embedding server (a real infinity-emb on loopback), all over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import selector
from selector.embedding import bundled_model_path
from tests.app.conftest import (
    NDJSON,
    REPO,
    Server,
    assert_error,
    free_port,
    jsonl,
    make_examples,
    wait_for_job,
)

DIMENSION = 16


def unit(vectors: np.ndarray) -> np.ndarray:
    """What the service stores: float64 normalisation, then float32."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def vector_examples(count: int, seed: int = 0) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Labelled examples with clustered raw (unnormalised) vectors of DIMENSION."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, DIMENSION)) * 3
    raw = centres[np.arange(count) % 3] + rng.standard_normal((count, DIMENSION))
    examples = make_examples(count)
    for example, vector in zip(examples, raw, strict=True):
        example["embedding"] = (vector * rng.uniform(0.5, 4.0)).tolist()  # any length
    return examples, unit(raw)


def reference_ids(
    examples: list[dict[str, Any]], vectors: np.ndarray, target: np.ndarray, k: int, **options: Any
) -> list[str]:
    """The library's selection on the same vectors, as example ids in selection order."""
    labels = [example["label"] for example in examples]
    pool = selector.Pool.from_arrays(vectors, labels=labels, normalized=True)
    result = selector.select(pool, target, k, **options)
    return [examples[i]["id"] for i in result.subsets[0].indices]


# --- bring your own vectors ----------------------------------------------------------------------


@pytest.fixture
def provided(client: httpx.Client) -> tuple[str, list[dict[str, Any]], np.ndarray]:
    examples, vectors = vector_examples(90)
    created = client.post(
        "/v1/pools", json={"name": "byov", "embedding": "provided", "dimension": DIMENSION}
    )
    assert created.status_code == 201, created.text
    assert created.json()["model"] == "provided" and created.json()["dimension"] == DIMENSION
    for start in range(0, len(examples), 45):
        batch = examples[start : start + 45]
        answer = client.post("/v1/pools/byov/examples", json={"examples": batch})
        assert answer.status_code == 200, answer.text
    yield "byov", examples, vectors
    client.delete("/v1/pools/byov")


def test_provided_vectors_select_as_the_library(
    client: httpx.Client, provided: tuple[str, list[dict[str, Any]], np.ndarray]
) -> None:
    name, examples, vectors = provided
    rng = np.random.default_rng(7)
    for trial in range(4):
        query = rng.standard_normal(DIMENSION) * 2
        body = client.post(
            f"/v1/pools/{name}/select", json={"query_embedding": query.tolist(), "k": 5}
        )
        assert body.status_code == 200, body.text
        expected = reference_ids(examples, vectors, unit(query[None]), 5)
        assert body.json()["subsets"][0]["ids"] == expected, trial
    # a target set of vectors, weighted, and query_embeddings as one shared target
    targets = rng.standard_normal((3, DIMENSION))
    weights = [0.5, 0.3, 0.2]
    body = client.post(
        f"/v1/pools/{name}/select",
        json={"target": {"embeddings": targets.tolist(), "weights": weights}, "k": 6},
    ).json()
    expected = reference_ids(examples, vectors, unit(targets), 6, target_weights=weights)
    assert body["subsets"][0]["ids"] == expected
    body = client.post(
        f"/v1/pools/{name}/select", json={"query_embeddings": targets.tolist(), "k": 6}
    ).json()
    assert body["subsets"][0]["ids"] == reference_ids(examples, vectors, unit(targets), 6)
    # a batch of independent vector queries: the library's select_batch, and each row as good
    # as the same query alone (these far-off queries leave candidates tied under the joint
    # kernel, whose order a batch and a single call may break differently)
    batch = client.post(
        f"/v1/pools/{name}/select/batch", json={"query_embeddings": targets.tolist(), "k": 3}
    )
    assert batch.status_code == 200, batch.text
    labels = [example["label"] for example in examples]
    pool = selector.Pool.from_arrays(vectors, labels=labels, normalized=True)
    library = selector.select_batch(pool, unit(targets), 3)
    for row, result in enumerate(batch.json()["results"]):
        assert result["subsets"][0]["ids"] == [examples[i]["id"] for i in library[row].indices]
        alone = selector.select(pool, unit(targets[row : row + 1]), 3)
        assert result["mmd2"] == pytest.approx(alone.mmd2, abs=1e-6)


def test_inline_candidates_with_vectors(client: httpx.Client) -> None:
    examples, vectors = vector_examples(30, seed=3)
    query = np.random.default_rng(1).standard_normal(DIMENSION)
    body = client.post(
        "/v1/select", json={"candidates": examples, "query_embedding": query.tolist(), "k": 4}
    )
    assert body.status_code == 200, body.text
    assert body.json()["subsets"][0]["ids"] == reference_ids(
        examples, vectors, unit(query[None]), 4
    )
    examples[3].pop("embedding")  # all or none
    assert_error(
        client.post("/v1/select", json={"candidates": examples, "query_embedding": [1.0] * 16}),
        422,
        "invalid_input",
    )


def test_bad_vectors_are_422(
    client: httpx.Client, provided: tuple[str, list[dict[str, Any]], np.ndarray]
) -> None:
    name, examples, _ = provided
    good = [0.1] * DIMENSION
    select = f"/v1/pools/{name}/select"
    upsert = f"/v1/pools/{name}/examples"
    bad_vectors = {
        "short": [0.1] * (DIMENSION - 1),
        "long": [0.1] * (DIMENSION + 1),
        "zero": [0.0] * DIMENSION,
        "float32 overflow": [1e39] + [0.0] * (DIMENSION - 1),
    }
    for why, vector in bad_vectors.items():
        assert_error(client.post(select, json={"query_embedding": vector}), 422, "invalid_input")
        example = {"input": f"bad {why}", "embedding": vector}
        assert_error(client.post(upsert, json={"examples": [example]}), 422, "invalid_input")
        targets = {"target": {"embeddings": [good, vector]}}
        assert_error(client.post(select, json=targets), 422, "invalid_input")
    # NaN and infinity (JSON extensions Python's parser reads) are refused too
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = '{"query_embedding": [' + ", ".join(["0.1"] * (DIMENSION - 1) + [literal]) + "]}"
        sent = client.post(select, content=raw, headers={"content-type": "application/json"})
        assert_error(sent, 422)
    assert_error(client.post(select, json={"query_embedding": []}), 422, "validation_error")
    # texts where vectors are required, and the reverse
    assert_error(client.post(select, json={"query": "a text"}), 422, "invalid_input")
    batch = client.post(f"/v1/pools/{name}/select/batch", json={"queries": ["a", "b"]})
    assert_error(batch, 422, "invalid_input")
    missing = {"examples": [{"input": "no vector"}]}
    assert_error(client.post(upsert, json=missing), 422, "invalid_input")
    both = {"query": "text", "query_embedding": good}
    assert_error(client.post(select, json=both), 422, "validation_error")
    assert client.get(f"/v1/pools/{name}").json()["size"] == len(examples)  # nothing stored
    # a model pool refuses vectors
    client.post("/v1/pools", json={"name": "texts-only"})
    with_vector = {"examples": [{"input": "hello", "embedding": good}]}
    assert_error(client.post("/v1/pools/texts-only/examples", json=with_vector), 422)
    client.post("/v1/pools/texts-only/examples", json={"examples": make_examples(5)})
    vector_query = {"query_embedding": [0.1] * 64}
    assert_error(client.post("/v1/pools/texts-only/select", json=vector_query), 422)
    client.delete("/v1/pools/texts-only")
    # pool creation: provided needs a dimension and takes no model; a model takes none
    for body in (
        {"name": "p1", "embedding": "provided"},
        {"name": "p2", "embedding": "provided", "dimension": 8, "model": "minilm"},
        {"name": "p3", "dimension": 8},
        {"name": "p4", "embedding": "provided", "dimension": 0},
    ):
        assert_error(client.post("/v1/pools", json=body), 422, "validation_error")
    assert_error(client.post("/v1/pools", json={"name": "p5", "model": "nope"}), 422)


def test_provided_import_reports_bad_vectors_as_lines(client: httpx.Client) -> None:
    examples, vectors = vector_examples(40, seed=5)
    created = client.post(
        "/v1/pools", json={"name": "byov-import", "embedding": "provided", "dimension": DIMENSION}
    )
    assert created.status_code == 201
    lines = [json.dumps(example) for example in examples]
    lines.insert(3, json.dumps({"input": "zero", "embedding": [0.0] * DIMENSION}))
    lines.insert(7, json.dumps({"input": "short", "embedding": [1.0, 2.0]}))
    lines.insert(11, json.dumps({"input": "none"}))
    lines.insert(15, '{"input": "nan", "embedding": [NaN' + ", 1.0" * (DIMENSION - 1) + "]}")
    job = client.post(
        "/v1/pools/byov-import/imports", content="\n".join(lines).encode(), headers=NDJSON
    )
    assert job.status_code == 202, job.text
    done = wait_for_job(client, job.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["inserted"] == 40
    assert [error["line"] for error in done["errors"]] == [4, 8, 12, 16]
    assert "zero" in done["errors"][0]["message"] and "dimension" in done["errors"][1]["message"]
    query = np.random.default_rng(2).standard_normal(DIMENSION)
    body = client.post(
        "/v1/pools/byov-import/select", json={"query_embedding": query.tolist(), "k": 4}
    ).json()
    assert body["subsets"][0]["ids"] == reference_ids(examples, vectors, unit(query[None]), 4)
    client.delete("/v1/pools/byov-import")


def test_provided_pool_calibrates_by_labels_only(client: httpx.Client) -> None:
    examples, _ = vector_examples(60, seed=9)
    body = {"name": "byov-cal", "embedding": "provided", "dimension": DIMENSION}
    assert client.post("/v1/pools", json=body).status_code == 201
    for example in examples:
        example.pop("label")
    assert client.post("/v1/pools/byov-cal/examples", json={"examples": examples}).is_success
    calibrate = client.post("/v1/pools/byov-cal/calibrate", json={"k": 2, "validation_size": 5})
    assert_error(calibrate, 422, "invalid_input")  # outputs cannot be embedded: no scorer
    client.delete("/v1/pools/byov-cal")


# --- two local models in one server --------------------------------------------------------------


def tiny_model(folder: Path) -> Path:
    """A small random BERT with MiniLM's tokenizer, saved as a sentence-transformers folder
    (mean pooling, normalised): a second local model that ships nothing."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    raw = folder / "raw"
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=128)
    pooling = models.Pooling(32, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    out = folder / "tiny"
    model.save(str(out))
    # The pooling config as the bundled model writes it (sentence-transformers 3), which the
    # library's ONNX backend reads; sentence-transformers 6 writes {"pooling_mode": "mean"}.
    pooling = json.loads((bundled_model_path() / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = 32
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return out


@pytest.mark.slow
def test_two_pools_on_two_local_models(tmp_path: Path) -> None:
    tiny = tiny_model(tmp_path)
    cache = tmp_path / "onnx"
    server = Server(
        tmp_path / "data", models=f"tiny={tiny}", model_cache=str(cache), embedding_backend="onnx"
    ).start()
    examples = make_examples(60)
    texts = [example["input"] for example in examples]
    query = "the trains felt negative"
    try:
        with server.client() as client:
            info = client.get("/v1/info").json()
            models = {model["name"]: model for model in info["models"]}
            assert models["tiny"]["dimension"] == 32 and not models["tiny"]["loaded"]
            assert models["minilm"]["dimension"] == 384
            for name, model in (("mini", "minilm"), ("tiny", "tiny")):
                created = client.post("/v1/pools", json={"name": name, "model": model})
                assert created.status_code == 201, created.text
                upserted = client.post(f"/v1/pools/{name}/examples", json={"examples": examples})
                assert upserted.status_code == 200, upserted.text
            pools = {pool["name"]: pool for pool in client.get("/v1/pools").json()["pools"]}
            assert (pools["mini"]["model"], pools["mini"]["dimension"]) == ("minilm", 384)
            assert (pools["tiny"]["model"], pools["tiny"]["dimension"]) == ("tiny", 32)
            loaded = {
                model["name"]: model["loaded"] for model in client.get("/v1/info").json()["models"]
            }
            assert loaded["minilm"] and loaded["tiny"]
            chosen = {}
            for name, folder in (("mini", None), ("tiny", tiny)):
                embedder = selector.load_sentence_embedder(folder, backend="onnx", cache_dir=cache)
                vectors = embedder.embed(texts)
                expected = reference_ids(examples, vectors, embedder.embed([query]), 6)
                body = client.post(f"/v1/pools/{name}/select", json={"query": query, "k": 6})
                assert body.status_code == 200, body.text
                chosen[name] = body.json()["subsets"][0]["ids"]
                assert chosen[name] == expected, name
            assert chosen["mini"] != chosen["tiny"]  # each pool used its own model
    finally:
        server.stop()


# --- a real remote embedding server --------------------------------------------------------------

WORDS = [
    "brakes",
    "engine",
    "ticket",
    "delay",
    "harbour",
    "storm",
    "pilot",
    "runway",
    "sail",
    "wheel",
    "battery",
    "charger",
    "route",
    "station",
    "platform",
    "crew",
    "cabin",
    "seat",
    "window",
    "luggage",
    "fare",
    "refund",
    "signal",
    "bridge",
    "tunnel",
    "ferry",
    "anchor",
    "cargo",
    "fuel",
    "tyre",
    "horn",
    "lane",
    "parking",
    "taxi",
    "driver",
    "conductor",
    "schedule",
    "weather",
    "fog",
    "ice",
    "smooth",
    "bumpy",
    "late",
    "early",
    "quiet",
    "loud",
    "cheap",
    "costly",
    "safe",
    "risky",
    "clean",
    "dirty",
    "fast",
    "slow",
    "friendly",
    "rude",
    "broken",
    "new",
    "old",
    "crowded",
    "empty",
    "scenic",
    "boring",
    "lovely",
    "awful",
]


def varied_examples(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Examples of random word sequences: unlike make_examples' near-identical templates, no
    two embeddings sit within float rounding of a tie, so two runtimes of one model (ONNX or
    torch here, torch in infinity) choose the same subsets."""
    rng = np.random.default_rng(seed)
    examples = make_examples(count)
    for example in examples:
        words = rng.choice(WORDS, size=int(rng.integers(5, 12)))
        example["input"] = f"{example['metadata']['topic']}: " + " ".join(words)
    return examples


class Infinity:
    """infinity-emb (scripts/infinity.sh) serving the bundled MiniLM on a loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> Infinity:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(REPO / "scripts" / "infinity.sh"), "serve", str(self.port)],
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.post(
                    f"{self.url}/embeddings", json={"input": ["up"]}, timeout=5
                ).is_success:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError("infinity did not start")

    def embed(self, texts: list[str]) -> np.ndarray:
        answer = httpx.post(f"{self.url}/embeddings", json={"input": texts}, timeout=60).json()
        return np.asarray([item["embedding"] for item in answer["data"]], dtype=np.float64)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the server too
            self.process.wait(timeout=30)


@pytest.fixture
def infinity(tmp_path: Path) -> Iterator[Infinity]:
    if not os.environ.get("MMDSHOT_INFINITY_VENV"):
        pytest.skip("MMDSHOT_INFINITY_VENV unset: scripts/test.sh installs infinity-emb")
    server = Infinity(tmp_path / "infinity.log")
    yield server.start()
    server.stop()


@pytest.mark.slow
def test_remote_embedding_server(infinity: Infinity, tmp_path: Path) -> None:
    examples = varied_examples(400)
    texts = [example["input"] for example in examples]
    local = selector.load_sentence_embedder(None, backend="torch")
    remote = infinity.embed(texts[:50])
    cosines = np.sum(unit(remote) * local.embed(texts[:50]), axis=1)
    assert np.all(cosines > 1 - 1e-4), cosines.min()
    server = Server(
        tmp_path / "data",
        embedder="minilm",
        embedding_backend="torch",
        embedding_url=infinity.url,
        embedding_model="minilm",
        embedding_batch_size="16",
        embedding_retries="1",
        import_chunk_size="32",
        request_timeout_s="180",  # the first pool on minilm loads it (torch), on a busy CPU
    ).start()
    queries = ["the ferry was late in the fog", "a smooth quiet taxi", "rude crew, broken seat"]
    try:
        with server.client() as client:
            assert client.get("/ready").json()["embedding_server"] == "ok"
            info = client.get("/v1/info").json()
            assert info["model"] == "remote:minilm"
            for name, model in (("far", None), ("near", "minilm")):
                assert (
                    client.post("/v1/pools", json={"name": name, "model": model}).status_code == 201
                )
            pools = {pool["name"]: pool for pool in client.get("/v1/pools").json()["pools"]}
            assert pools["far"]["model"] == "remote:minilm" and pools["far"]["dimension"] == 384
            job = client.post("/v1/pools/near/imports", content=jsonl(examples), headers=NDJSON)
            assert wait_for_job(client, job.json()["id"], 300)["status"] == "succeeded"

            # the server stopped mid-import: a failed, resumable job; its whole chunks are staged
            # (done) but the pool holds none of them until the import completes
            job_id = client.post(
                "/v1/pools/far/imports", content=jsonl(examples), headers=NDJSON
            ).json()["id"]
            deadline = time.monotonic() + 120
            while client.get(f"/v1/jobs/{job_id}").json()["done"] < 64:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            infinity.stop()
            failed = wait_for_job(client, job_id, 120)
            assert failed["status"] == "failed" and failed["resumable"], failed
            assert "embedding server" in failed["message"]
            assert 0 < failed["done"] < len(examples) and failed["done"] % 32 == 0
            size = client.get("/v1/pools/far").json()["size"]
            assert size == failed["inserted"] == 0  # an import is applied whole, or not at all
            # (far is still empty: the stateless route embeds with the same, default, server)
            selection = client.post(
                "/v1/select",
                json={"query": "a new query", "k": 1, "candidates": make_examples(2, 900)},
            )
            assert_error(selection, 503, "embedding_unavailable")
            assert selection.headers["retry-after"]
            upsert = client.post("/v1/pools/far/examples", json={"examples": make_examples(2, 900)})
            assert_error(upsert, 503, "embedding_unavailable")
            assert client.get("/v1/pools/far").json()["size"] == size
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["embedding_server"] == "unavailable"

            # back up on the same port: the job resumes and the pools agree with each other
            infinity.start()
            resumed = client.post(f"/v1/jobs/{job_id}/resume")
            assert resumed.status_code == 202, resumed.text
            finished = wait_for_job(client, job_id, 300)
            assert finished["status"] == "succeeded", finished
            assert client.get("/v1/pools/far").json()["size"] == len(examples)
            assert client.get("/ready").status_code == 200
            for query in queries:
                far, near = (
                    client.post(f"/v1/pools/{name}/select", json={"query": query, "k": 6}).json()
                    for name in ("far", "near")
                )
                assert far["subsets"][0]["ids"] == near["subsets"][0]["ids"], query
                assert abs(far["mmd2"] - near["mmd2"]) < 1e-3
    finally:
        server.stop()
