"""Selection endpoints over real HTTP: the answers, the constraints, and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.app.conftest import assert_error, make_examples


def select(client: httpx.Client, pool: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/pools/{pool}/select", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


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
    assert result["mmd2"] <= result["baselines"]["knn"] + 1e-9
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


def test_select_is_deterministic_and_cached_by_version(client: httpx.Client, pool: str) -> None:
    first = select(client, pool, query="boats neutral", k=5, method="random", seed=3)
    second = select(client, pool, query="boats neutral", k=5, method="random", seed=3)
    assert first["examples"] == second["examples"] and first["pool_version"] == 2


@pytest.mark.parametrize("method", ["knn", "mmr", "random"])
def test_baseline_methods(client: httpx.Client, pool: str, method: str) -> None:
    result = select(client, pool, query="planes", k=3, method=method)
    assert result["method"] == method and len(result["examples"]) == 3


@pytest.mark.parametrize("kernel", ["rbf", "laplace", "cosine"])
def test_kernels(client: httpx.Client, pool: str, kernel: str) -> None:
    assert select(client, pool, query="planes", k=3, kernel=kernel)["kernel"] == kernel


def test_targets(client: httpx.Client, pool: str) -> None:
    shared = select(client, pool, queries=["cars positive", "trains negative"], k=4)
    assert "Input: cars" not in shared["prompt"].split("\n\n")[-1]
    weighted = select(client, pool, target={"texts": ["cars", "boats"], "weights": [3, 1]}, k=4)
    assert len(weighted["examples"]) == 4
    assert client.post("/v1/pools", json={"name": "target-pool"}).status_code in (201, 409)
    client.post("/v1/pools/target-pool/examples", json={"examples": make_examples(5, start=300)})
    other = select(client, pool, target={"pool": "target-pool"}, k=4, tau=0.5)
    assert other["tau"] == 0.5


def test_auto_k_and_constraints(client: httpx.Client, pool: str) -> None:
    auto = select(client, pool, query="cars", k_min=2, k_max=6)
    assert 2 <= auto["k"] <= 6 and auto["bounds_by_k"]
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
    deduped = select(client, pool, query="cars", k=3, constraints={"dedup_threshold": 0.9})
    assert len(deduped["examples"]) == 3


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
    assert {e["id"] for e in response.json()["examples"]} <= {f"ex-{i}" for i in range(12)}
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
