"""Selection endpoints over real HTTP: the answers, the constraints, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import selector
from app.config import Settings
from app.engine import Engine
from app.schemas import ExampleIn, PoolSelectRequest
from tests.app.conftest import assert_error, make_examples

# The shared server's embedder: the same vectors in the test process.
EMBEDDER = selector.HashingEmbedder(64)


def select(client: httpx.Client, pool: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/pools/{pool}/select", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def chosen_ids(result: dict[str, Any]) -> list[str]:
    """The chosen ids in selection order."""
    ranked = sorted(result["examples"], key=lambda example: example["selection_rank"])
    return [example["id"] for example in ranked]


def pool_rows(client: httpx.Client, pool: str) -> list[dict[str, Any]]:
    """The pool's examples in insertion order (the order the service's pool holds them)."""
    page = client.get(f"/v1/pools/{pool}/examples", params={"limit": 1000}).json()
    assert page["next_cursor"] is None
    rows: list[dict[str, Any]] = page["examples"]
    return rows


def library_ids(
    rows: list[dict[str, Any]], target: str | list[str], k: int, **options: Any
) -> list[str]:
    """What :func:`selector.select` chooses over ``rows`` embedded here, for ``target`` (one
    query or a set of texts), with the service's defaults (labels when all have one, seed 0)."""
    vectors = EMBEDDER.embed([row["input"] for row in rows])
    points = EMBEDDER.embed([target])[0] if isinstance(target, str) else EMBEDDER.embed(target)
    labels = [row["label"] for row in rows]
    result = selector.select(
        vectors,
        points,
        k,
        labels=labels if all(label is not None for label in labels) else None,
        device="cpu",
        seed=0,
        **options,
    )
    return [rows[index]["id"] for index in result.indices]


def test_select_one_query(client: httpx.Client, pool: str) -> None:
    result = select(client, pool, query="the cars felt positive", k=4, num_subsets=3)
    assert result["pool"] == pool and result["k"] == 4 and result["joint"] is True
    ids = [example["id"] for example in result["examples"]]
    assert len(set(ids)) == 4
    assert set(result["subsets"][0]["ids"]) == set(ids)
    assert result["subsets"][0]["mmd2"] == pytest.approx(result["mmd2"])
    assert [s["mmd2"] for s in result["subsets"][1:]] == sorted(
        s["mmd2"] for s in result["subsets"][1:]
    )
    assert result["mmd"] == pytest.approx(result["mmd2"] ** 0.5)
    assert result["bound"] == pytest.approx(result["bias_bound"] + 0.5)  # R / sqrt(4)
    assert set(result["baselines"]) == {"knn", "random"}
    assert result["mmd2"] <= result["baselines"]["knn"]["mmd2"] + 1e-9
    assert set(result["timings"]) == {
        "load_ms",
        "embed_ms",
        "scan_ms",
        "select_ms",
        "refine_ms",
        "total_ms",
    }
    blocks = result["prompt"].split("\n\n")
    assert blocks[-1] == "Input: the cars felt positive\nOutput:"
    first = result["examples"][0]
    assert blocks[0] == f"Input: {first['input']}\nOutput: {first['output']}"
    # Most relevant last: the same set in selection order is another ordering of it.
    in_order = select(client, pool, query="the cars felt positive", k=4, order="selection")
    assert [e["selection_rank"] for e in in_order["examples"]] == [0, 1, 2, 3]
    assert {e["id"] for e in in_order["examples"]} == set(ids)


def test_select_is_deterministic_and_follows_the_version(client: httpx.Client, pool: str) -> None:
    first = select(client, pool, query="boats neutral", k=5, method="random", seed=3)
    second = select(client, pool, query="boats neutral", k=5, method="random", seed=3)
    assert first["examples"] == second["examples"] and first["pool_version"] == 2
    other_seed = select(client, pool, query="boats neutral", k=5, method="random", seed=4)
    assert chosen_ids(other_seed) != chosen_ids(first)  # the seed is what fixed it
    # A version bump reaches the next selection: a stale pool would not know the new example.
    exact = {"id": "exact", "input": "boats neutral", "output": "neutral", "label": "neutral"}
    assert client.post(f"/v1/pools/{pool}/examples", json={"examples": [exact]}).status_code == 200
    bumped = select(client, pool, query="boats neutral", k=1, method="knn")
    assert (chosen_ids(bumped), bumped["pool_version"]) == (["exact"], 3)
    assert client.delete(f"/v1/pools/{pool}/examples/exact").status_code == 204
    dropped = select(client, pool, query="boats neutral", k=1, method="knn")
    assert chosen_ids(dropped) != ["exact"] and dropped["pool_version"] == 4


def test_pool_is_read_once_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder="hashing", hashing_dimension=64))
    try:
        engine.load_models()
        engine.create_pool("cached", "")
        engine.upsert("cached", [ExampleIn(**example) for example in make_examples(20)])
        reads: list[str] = []
        read_pool, read_changes = engine.store.read_pool, engine.store.read_changes

        def counted(name: str) -> Any:
            reads.append(name)
            return read_pool(name)

        def changes(name: str, since: Any) -> Any:
            reads.append(f"changes of {name}")
            return read_changes(name, since)

        monkeypatch.setattr(engine.store, "read_pool", counted)
        monkeypatch.setattr(engine.store, "read_changes", changes)
        request = PoolSelectRequest(query="boats neutral", k=3)
        first = engine.select_in_pool("cached", request)
        second = engine.select_in_pool("cached", request)
        assert reads == ["cached"]  # the second selection is served from the cached pool
        assert second.examples == first.examples
        engine.upsert("cached", [ExampleIn(**make_examples(1, start=500)[0])])
        third = engine.select_in_pool("cached", request)
        # The write costs the next selection only what changed, not the whole pool again.
        assert reads == ["cached", "changes of cached"]
        assert third.pool_version == first.pool_version + 1
    finally:
        engine.close()


@pytest.mark.parametrize("method", ["knn", "mmr", "random"])
def test_baseline_methods(client: httpx.Client, pool: str, method: str) -> None:
    result = select(client, pool, query="planes", k=3, method=method)
    assert result["method"] == method
    assert chosen_ids(result) == library_ids(pool_rows(client, pool), "planes", 3, method=method)


def test_baselines_differ_from_each_other(client: httpx.Client, pool: str) -> None:
    choices = {
        method: tuple(chosen_ids(select(client, pool, query="planes", k=3, method=method)))
        for method in ("knn", "mmr", "random", "mmd")
    }
    assert len(set(choices.values())) >= 3, choices  # the method really changes the choice


@pytest.mark.parametrize("kernel", ["rbf", "laplace", "cosine"])
def test_kernels(client: httpx.Client, pool: str, kernel: str) -> None:
    result = select(client, pool, query="planes", k=3, kernel=kernel)
    assert result["kernel"] == kernel
    assert chosen_ids(result) == library_ids(pool_rows(client, pool), "planes", 3, kernel=kernel)


def test_targets(client: httpx.Client, pool: str) -> None:
    rows = pool_rows(client, pool)
    shared = select(client, pool, queries=["cars positive", "trains negative"], k=4)
    assert "Input: cars" not in shared["prompt"].split("\n\n")[-1]
    assert chosen_ids(shared) == library_ids(rows, ["cars positive", "trains negative"], 4)

    texts = ["cars", "boats"]
    cars = select(client, pool, target={"texts": texts, "weights": [3, 1]}, k=4)
    boats = select(client, pool, target={"texts": texts, "weights": [1, 3]}, k=4)
    assert chosen_ids(cars) != chosen_ids(boats)  # the weights matter
    assert chosen_ids(cars) == library_ids(rows, texts, 4, target_weights=[3, 1])
    assert chosen_ids(boats) == library_ids(rows, texts, 4, target_weights=[1, 3])

    assert client.post("/v1/pools", json={"name": "target-pool"}).status_code in (201, 409)
    target_examples = make_examples(5, start=300)
    client.post("/v1/pools/target-pool/examples", json={"examples": target_examples})
    other = select(client, pool, target={"pool": "target-pool"}, k=4, tau=0.5)
    assert other["tau"] == 0.5
    target_inputs = [example["input"] for example in target_examples]
    assert chosen_ids(other) == library_ids(rows, target_inputs, 4, tau=0.5)


def test_auto_k_and_constraints(client: httpx.Client, pool: str) -> None:
    rows = pool_rows(client, pool)
    auto = select(client, pool, query="cars", k_min=2, k_max=6)
    assert 2 <= auto["k"] <= 6 and set(auto["bounds_by_k"]) == {str(k) for k in range(2, 7)}
    best = min(auto["bounds_by_k"], key=lambda k: auto["bounds_by_k"][k])
    assert auto["k"] == int(best)  # the k with the smallest bound
    assert chosen_ids(auto) == library_ids(rows, "cars", 2, k_range=(2, 6))
    budget = select(client, pool, query="cars", k=3, constraints={"token_budget": 40})
    token_counts = [
        client.get(f"/v1/pools/{pool}/examples/{e['id']}").json()["token_count"]
        for e in budget["examples"]
    ]
    assert sum(token_counts) <= 40
    quotas = select(
        client,
        pool,
        query="cars positive",
        k=4,
        constraints={"label_quotas": {"negative": {"min": 2}}, "exclude_ids": ["ex-0"]},
    )
    labels = [e["label"] for e in quotas["examples"]]
    assert labels.count("negative") >= 2 and "ex-0" not in [e["id"] for e in quotas["examples"]]
    balanced = select(client, pool, query="cars", k=6, constraints={"balance_labels": True})
    assert sorted(e["label"] for e in balanced["examples"]) == sorted(
        ["positive", "negative", "neutral"] * 2
    )
    filtered = select(
        client, pool, query="x", k=3, constraints={"metadata_filter": {"topic": "boats"}}
    )
    assert {e["metadata"]["topic"] for e in filtered["examples"]} == {"boats"}
    inputs = EMBEDDER.embed([row["input"] for row in rows])
    vectors = dict(zip([row["id"] for row in rows], inputs, strict=True))

    def closest_pair(result: dict[str, Any]) -> float:
        chosen = np.stack([vectors[example_id] for example_id in chosen_ids(result)])
        similarity = chosen @ chosen.T
        np.fill_diagonal(similarity, -1.0)
        return float(similarity.max())

    assert closest_pair(select(client, pool, query="cars", k=3)) > 0.8  # near-duplicates...
    deduped = select(client, pool, query="cars", k=3, constraints={"dedup_threshold": 0.8})
    assert len(deduped["examples"]) == 3 and closest_pair(deduped) <= 0.8  # ...kept apart


def test_templates(client: httpx.Client, pool: str) -> None:
    result = select(
        client,
        pool,
        query="cars",
        k=2,
        template="[{label}] {input} => {output}",
        query_template="{query} =>",
        separator="\n",
    )
    lines = result["prompt"].split("\n")
    assert lines[-1] == "cars =>" and lines[0].startswith("[")


def test_batch_matches_single_selections(client: httpx.Client, pool: str) -> None:
    queries = ["cars positive", "boats negative", "trains neutral"]
    batch = client.post(f"/v1/pools/{pool}/select/batch", json={"queries": queries, "k": 3})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert len(results) == 3
    for query, result in zip(queries, results, strict=True):
        single = select(client, pool, query=query, k=3)
        assert {e["id"] for e in result["examples"]} == {e["id"] for e in single["examples"]}
        assert result["prompt"].endswith(f"Input: {query}\nOutput:")


def test_stateless_select(client: httpx.Client) -> None:
    body = {"query": "cars positive", "k": 2, "candidates": make_examples(12)}
    response = client.post("/v1/select", json=body)
    assert response.status_code == 200, response.text
    candidates = body["candidates"]
    assert isinstance(candidates, list)
    expected = library_ids(candidates, "cars positive", 2)
    assert chosen_ids(response.json()) == expected
    knn = client.post("/v1/select", json={**body, "method": "knn", "k": 3}).json()
    assert chosen_ids(knn) == library_ids(candidates, "cars positive", 3, method="knn")
    target_pool = {**body, "query": None, "target": {"pool": "elsewhere"}}
    assert_error(client.post("/v1/select", json=target_pool), 422, "validation_error")


BAD_SELECTIONS: dict[str, tuple[dict[str, Any], int, str]] = {
    "k-over-pool": ({"query": "x", "k": 61}, 422, "invalid_input"),
    "k-over-limit": ({"query": "x", "k": 100_000}, 422, "validation_error"),
    "k-zero": ({"query": "x", "k": 0}, 422, "validation_error"),
    "k-and-range": ({"query": "x", "k": 2, "k_min": 1, "k_max": 3}, 422, "validation_error"),
    "empty-query": ({"query": ""}, 422, "validation_error"),
    "missing-query": ({"k": 2}, 422, "validation_error"),
    "two-targets": ({"query": "x", "queries": ["y"]}, 422, "validation_error"),
    "long-query": ({"query": "x" * 10_000}, 422, "validation_error"),
    "wrong-type-k": ({"query": "x", "k": "three"}, 422, "validation_error"),
    "wrong-type-query": ({"query": ["x"]}, 422, "validation_error"),
    "unknown-kernel": ({"query": "x", "kernel": "gaussian"}, 422, "validation_error"),
    "unknown-method": ({"query": "x", "method": "best"}, 422, "validation_error"),
    "negative-tau": ({"query": "x", "tau": -1}, 422, "validation_error"),
    "unknown-field": ({"query": "x", "kk": 3}, 422, "validation_error"),
    "bad-template": ({"query": "x", "template": "{nope}"}, 422, "validation_error"),
    "bad-format-spec": ({"query": "x", "template": "{input:d}"}, 422, "validation_error"),
    "unknown-exclude": (
        {"query": "x", "constraints": {"exclude_ids": ["zz"]}},
        422,
        "invalid_input",
    ),
    "unknown-quota-label": (
        {"query": "x", "constraints": {"label_quotas": {"zz": {"min": 1}}}},
        409,
        "infeasible_constraint",
    ),
    "infeasible-budget": (
        {"query": "x", "k": 8, "constraints": {"token_budget": 1}},
        409,
        "infeasible_constraint",
    ),
    "infeasible-filter": (
        {"query": "x", "constraints": {"metadata_filter": {"topic": "none"}}},
        409,
        "infeasible_constraint",
    ),
    "unknown-target-pool": ({"target": {"pool": "missing"}}, 404, "not_found"),
    "weights-without-match": (
        {"target": {"texts": ["a"], "weights": [1, 2]}},
        422,
        "validation_error",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SELECTIONS))
def test_bad_selection(client: httpx.Client, pool: str, case: str) -> None:
    body, status, type_ = BAD_SELECTIONS[case]
    assert_error(client.post(f"/v1/pools/{pool}/select", json=body), status, type_)


def test_bad_raw_bodies(client: httpx.Client, pool: str) -> None:
    url = f"/v1/pools/{pool}/select"
    headers = {"content-type": "application/json"}
    nan = client.post(url, content=b'{"query": "x", "tau": NaN}', headers=headers)
    assert_error(nan, 422, "validation_error")
    infinite = b'{"query": "x", "constraints": {"dedup_threshold": Infinity}}'
    assert_error(client.post(url, content=infinite, headers=headers), 422, "validation_error")
    assert_error(client.post(url, content=b"{broken", headers=headers), 422, "validation_error")
    assert_error(client.post(url, content=b"[]", headers=headers), 422, "validation_error")
    big = {"query": "x", "constraints": {"exclude_ids": ["a" * 100] * 3000}}
    assert_error(client.post(url, json=big), 413, "payload_too_large")

    def chunks() -> Any:
        yield b'{"query": "'
        for _ in range(300):
            yield b"x" * 1000
        yield b'"}'

    assert_error(client.post(url, content=chunks(), headers=headers), 413, "payload_too_large")


def test_bad_pools(client: httpx.Client) -> None:
    assert_error(client.post("/v1/pools/missing/select", json={"query": "x"}), 404, "not_found")
    assert_error(client.post("/v1/pools/bad name!/select", json={"query": "x"}), 422)
    assert_error(client.post("/v1/pools", json={"name": "bad/name"}), 422, "validation_error")
    assert_error(client.post("/v1/pools", json={"name": ""}), 422, "validation_error")
    assert_error(client.post("/v1/pools", json={"name": 5}), 422, "validation_error")
    assert client.post("/v1/pools", json={"name": "empty-pool"}).status_code == 201
    assert_error(client.post("/v1/pools/empty-pool/select", json={"query": "x"}), 422)
    examples = client.post(
        "/v1/pools/empty-pool/examples", json={"examples": [{"input": "x", "metadata": {"v": []}}]}
    )
    assert_error(examples, 422, "validation_error")
    assert_error(
        client.post("/v1/pools/missing/examples", json={"examples": make_examples(1)}), 404
    )
    assert_error(client.post("/v1/pools/missing/select/batch", json={"queries": ["x"]}), 404)
    assert_error(client.post("/v1/pools/empty-pool/select/batch", json={"queries": []}), 422)


def test_baselines_give_mmd_and_mmd2(client: httpx.Client, pool: str) -> None:
    result = select(client, pool, query="the boats felt neutral", k=3)
    for name in ("knn", "random"):
        baseline = result["baselines"][name]
        assert set(baseline) == {"mmd", "mmd2"}
        assert baseline["mmd"] == pytest.approx(max(baseline["mmd2"], 0.0) ** 0.5)
    assert result["mmd"] <= result["baselines"]["knn"]["mmd"] + 1e-9


def test_bound_constants_are_set_per_request(client: httpx.Client, pool: str) -> None:
    plain = select(client, pool, query="the planes felt negative", k=4)
    scaled = select(
        client,
        pool,
        query="the planes felt negative",
        k=4,
        bias_constant=3.0,
        complexity_constant=0.0,
    )
    assert [e["id"] for e in scaled["examples"]] == [e["id"] for e in plain["examples"]]
    assert scaled["bias_bound"] == pytest.approx(3.0 * plain["mmd"])
    assert scaled["bound"] == pytest.approx(3.0 * plain["mmd"])  # R = 0
    assert plain["bound"] == pytest.approx(plain["mmd"] + 0.5)  # the defaults: C = R = 1
    for bad in ({"bias_constant": 0}, {"complexity_constant": -1}):
        response = client.post(f"/v1/pools/{pool}/select", json={"query": "x", "k": 2, **bad})
        assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("template", "query_line"),
    [
        ("Tweet: {input}\nSentiment: {output}", "Tweet: the cars\nSentiment:"),
        ("Q: {input} A: {output} [{label}]", "Q: the cars A:"),
        ("{label}: {input} => {output}", "Input: the cars\nOutput:"),  # a field before output
        ("{{x}} {input} -> {output}", "{x} the cars ->"),
    ],
    ids=["two-lines", "label-after", "label-before", "escaped-braces"],
)
def test_query_template_follows_the_template_when_unset(
    client: httpx.Client, pool: str, template: str, query_line: str
) -> None:
    result = select(client, pool, query="the cars", k=2, template=template)
    assert result["prompt"].split("\n\n")[-1] == query_line
    given = select(
        client, pool, query="the cars", k=2, template=template, query_template="{query}?"
    )
    assert given["prompt"].split("\n\n")[-1] == "the cars?"


def test_timestamps_come_in_iso_8601_too(client: httpx.Client, pool: str) -> None:
    from datetime import datetime

    info = client.get(f"/v1/pools/{pool}").json()
    for name in ("created_at", "updated_at"):
        parsed = datetime.fromisoformat(info[f"{name}_iso"])
        assert parsed.utcoffset() is not None and parsed.timestamp() == pytest.approx(info[name])


def naive_mmd2(
    chosen: list[int],
    inputs: np.ndarray,
    labels: list[str],
    points: np.ndarray,
    probability: np.ndarray | None,
    tau: float,
) -> float:
    """MMD^2 of the pool rows ``chosen`` to the target ``points`` (uniform weights) under the
    softmax kernel, times the label kernel when ``probability: (m, labels)`` is given: the
    double sums written out, with the empty set's value the target term alone."""

    def kernel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp((a @ b - 1.0) / tau))

    names = sorted(set(labels))
    m = len(points)
    target = (
        sum(
            kernel(points[j], points[o])
            * (1.0 if probability is None else float(probability[j] @ probability[o]))
            for j in range(m)
            for o in range(m)
        )
        / m**2
    )
    if not chosen:
        return target
    k = len(chosen)
    within = sum(
        kernel(inputs[a], inputs[b]) * (1.0 if probability is None else labels[a] == labels[b])
        for a in chosen
        for b in chosen
    )
    cross = sum(
        kernel(inputs[a], points[j])
        * (1.0 if probability is None else probability[j][names.index(labels[a])])
        for a in chosen
        for j in range(m)
    )
    return within / k**2 - 2.0 * cross / (k * m) + target


@pytest.mark.parametrize("joint", [False, True], ids=["input-kernel", "joint-labels"])
@pytest.mark.parametrize("targets", [1, 3], ids=["one-query", "three-texts"])
def test_example_scores(client: httpx.Client, pool: str, joint: bool, targets: int) -> None:
    texts = ["the boats felt neutral", "the cars felt positive", "trains, negative"][:targets]
    body: dict[str, Any] = {"k": 4, "joint": joint, "tau": 0.3}
    body.update({"query": texts[0]} if targets == 1 else {"target": {"texts": texts}})
    result = select(client, pool, **body)
    assert result["joint"] is joint
    rows = pool_rows(client, pool)
    inputs = EMBEDDER.embed([row["input"] for row in rows]).astype(np.float64)
    inputs /= np.linalg.norm(inputs, axis=1, keepdims=True)
    points = EMBEDDER.embed(texts).astype(np.float64)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = [row["label"] for row in rows]
    names = sorted(set(labels))
    probability = None
    if joint:  # the library's estimate: the 16 nearest candidates, softmax at label_tau 0.05
        probability = np.zeros((targets, len(names)))
        for j, point in enumerate(points):
            inner = inputs @ point
            near = np.argsort(-inner, kind="stable")[:16]
            weight = np.exp((inner[near] - 1.0) / 0.05)
            for index, value in zip(near, weight / weight.sum(), strict=True):
                probability[j][names.index(labels[index])] += value
    position = {row["id"]: i for i, row in enumerate(rows)}
    chosen = [position[example_id] for example_id in chosen_ids(result)]
    full = naive_mmd2(chosen, inputs, labels, points, probability, 0.3)
    assert full == pytest.approx(result["mmd2"], abs=1e-6)
    for example in result["examples"]:
        i = position[example["id"]]
        similarity = float(np.mean([np.exp((inputs[i] @ y - 1.0) / 0.3) for y in points]))
        affinity = similarity
        if probability is not None:
            affinity = float(
                np.mean(
                    [
                        np.exp((inputs[i] @ y - 1.0) / 0.3) * probability[j][names.index(labels[i])]
                        for j, y in enumerate(points)
                    ]
                )
            )
        without = naive_mmd2(
            [c for c in chosen if c != i], inputs, labels, points, probability, 0.3
        )
        assert example["similarity"] == pytest.approx(similarity, abs=1e-6)
        assert example["affinity"] == pytest.approx(affinity, abs=1e-6)
        assert example["contribution"] == pytest.approx(without - full, abs=1e-6)
    # The greedy's own choice: dropping its first pick never brings the set closer here.
    first = next(e for e in result["examples"] if e["selection_rank"] == 0)
    assert first["contribution"] > -1e-9


def test_example_scores_k1_and_batch(client: httpx.Client, pool: str) -> None:
    single = select(client, pool, query="the planes felt negative", k=1, joint=False, tau=0.3)
    (example,) = single["examples"]
    # MMD^2 of the empty set is the target term k(q, q) = 1: contribution = 1 - mmd2.
    assert example["contribution"] == pytest.approx(1.0 - single["mmd2"], abs=1e-6)
    batch = client.post(
        f"/v1/pools/{pool}/select/batch",
        json={"queries": ["the planes felt negative", "the cars"], "k": 3},
    )
    assert batch.status_code == 200, batch.text
    for query, item in zip(
        ["the planes felt negative", "the cars"], batch.json()["results"], strict=True
    ):
        alone = select(client, pool, query=query, k=3)
        assert [e["id"] for e in item["examples"]] == [e["id"] for e in alone["examples"]]
        for left, right in zip(item["examples"], alone["examples"], strict=True):
            for name in ("similarity", "affinity", "contribution"):
                assert left[name] == pytest.approx(right[name], abs=1e-6)  # float32 batches


def test_messages_format_gives_chat_messages(client: httpx.Client, pool: str) -> None:
    template = "Tweet: {input}\nSentiment: {output} ({label})"
    result = select(
        client,
        pool,
        query="the cars felt positive",
        k=3,
        template=template,
        format="messages",
        system="Classify the sentiment.",
    )
    messages = result["messages"]
    assert messages[0] == {"role": "system", "content": "Classify the sentiment."}
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 3 + ["user"]
    for position, example in enumerate(result["examples"]):
        user, assistant = messages[1 + 2 * position], messages[2 + 2 * position]
        assert user["content"] == f"Tweet: {example['input']}\nSentiment:"
        assert assistant["content"] == f"{example['output']} ({example['label']})"
    assert messages[-1] == {"role": "user", "content": "Tweet: the cars felt positive\nSentiment:"}
    assert result["prompt"].endswith("Tweet: the cars felt positive\nSentiment:")
    plain = select(client, pool, query="the cars felt positive", k=3, template=template)
    assert plain["messages"] is None and plain["prompt"] == result["prompt"]
    # No {output} in the template: the user message is the whole template, the answer the output.
    bare = select(client, pool, query="x", k=2, template="<{input}>", format="messages")
    assert "system" not in [m["role"] for m in bare["messages"]]
    for position, example in enumerate(bare["examples"]):
        assert bare["messages"][2 * position]["content"] == f"<{example['input']}>"
        assert bare["messages"][2 * position + 1]["content"] == example["output"]
    response = client.post(f"/v1/pools/{pool}/select", json={"query": "x", "format": "chat"})
    assert_error(response, 422, "validation_error")
