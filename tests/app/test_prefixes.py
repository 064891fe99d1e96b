"""Prefixes over the real HTTP interface (a server with traffic sampling on): create one,
select with it, watch it go stale, rebuild and delete it; its block is byte-identical across
queries and calls; the whole prompt's MMD^2 matches a naive reference over prefix + slice;
bad input gets 4xx JSON errors. The store's side (staleness, the pool's cascade) runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import selector
from app import prefixes, schemas
from app.engine import Snapshot
from app.errors import ApiError
from app.store import Store
from tests.app import test_store
from tests.app.conftest import Server, assert_error, make_examples

open_store = test_store.open_store
store = test_store.store
TRAFFIC = 12
QUERIES = ["the trains were late again", "a boat trip on the lake", "planes and airports"]


@pytest.fixture(scope="module")
def sampling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that keeps the 12 most recent queries of each pool."""
    running = Server(tmp_path_factory.mktemp("prefixes"), traffic_sample=str(TRAFFIC)).start()
    yield running
    running.stop()


@pytest.fixture
def http(sampling: Server) -> Iterator[httpx.Client]:
    with sampling.client() as client:
        yield client


def new_pool(http: httpx.Client, name: str, count: int = 60) -> str:
    assert http.post("/v1/pools", json={"name": name}).status_code == 201
    upserted = http.post(f"/v1/pools/{name}/examples", json={"examples": make_examples(count)})
    assert upserted.status_code == 200, upserted.text
    return name


def create(http: httpx.Client, pool: str, **body: Any) -> dict[str, Any]:
    answer = http.post(f"/v1/pools/{pool}/prefixes", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    assert answer.headers["Location"] == f"/v1/pools/{pool}/prefixes/{created['name']}"
    return created


def select(http: httpx.Client, pool: str, **body: Any) -> dict[str, Any]:
    answer = http.post(f"/v1/pools/{pool}/select", json=body)
    assert answer.status_code == 200, answer.text
    selection: dict[str, Any] = answer.json()
    return selection


def assert_prefix_first(selection: dict[str, Any], prefix: dict[str, Any]) -> None:
    """The prompt is the stored block, the separator, then the slice; nothing is re-chosen."""
    part = selection["prefix"]
    assert part["prefix_prompt"] == prefix["prefix_prompt"]
    assert part["prefix_hash"] == prefix["prefix_hash"]
    assert part["prefix_hash"] == hashlib.sha256(part["prefix_prompt"].encode()).hexdigest()
    assert part["prefix_ids"] == prefix["ids"]
    assert selection["prompt"] == part["prefix_prompt"] + prefix["separator"] + part["slice_prompt"]
    slice_ids = [example["id"] for example in selection["examples"]]
    assert not set(slice_ids) & set(prefix["ids"])
    assert len(set(slice_ids)) == len(slice_ids) == selection["k"]
    assert part["prefix_tokens"] == prefix["prefix_tokens"] > 0
    assert part["slice_tokens"] > 0


def test_create_select_stale_rebuild_delete(http: httpx.Client) -> None:
    pool = new_pool(http, "lifecycle")
    made = create(http, pool, name="shared", k=4, target={"texts": QUERIES})
    assert (made["k"], made["source"], made["target_size"], made["stale"]) == (4, "texts", 3, False)
    assert len(made["ids"]) == 4 and made["pool_version"] == 2
    assert made["prefix_prompt"].count("Input: ") == 4
    assert http.get(f"/v1/pools/{pool}/prefixes/shared").json() == made
    assert http.get(f"/v1/pools/{pool}/prefixes").json() == {"prefixes": [made]}
    brief = {key: made[key] for key in ("name", "k", "prefix_hash", "stale")}
    assert http.get(f"/v1/pools/{pool}").json()["prefixes"] == [brief]

    chosen = select(http, pool, query="my car broke down", k=3, prefix="shared")
    assert_prefix_first(chosen, made)
    assert chosen["prefix"]["stale"] is False and chosen["prefix"]["pinned"] == 4
    assert chosen["prompt"].endswith("Input: my car broke down\nOutput:")

    # An example of the prefix changes: stale everywhere, the block still served as built.
    changed = {**make_examples(1)[0], "id": made["ids"][0], "input": "rewritten entirely"}
    assert http.post(f"/v1/pools/{pool}/examples", json={"examples": [changed]}).status_code == 200
    assert http.get(f"/v1/pools/{pool}/prefixes/shared").json()["stale"] is True
    assert http.get(f"/v1/pools/{pool}").json()["prefixes"][0]["stale"] is True
    again = select(http, pool, query="my car broke down", k=3, prefix="shared")
    assert again["prefix"]["stale"] is True
    assert again["prefix"]["prefix_prompt"] == made["prefix_prompt"]

    # A deleted one stays in the prefix until the rebuild; the slice is conditioned on the rest.
    gone = made["ids"][1]
    assert http.delete(f"/v1/pools/{pool}/examples/{gone}").status_code == 204
    after = select(http, pool, query="my car broke down", k=3, prefix="shared")
    assert after["prefix"]["prefix_ids"] == made["ids"] and after["prefix"]["pinned"] == 3
    assert gone not in [example["id"] for example in after["examples"]]

    rebuilt = http.post(f"/v1/pools/{pool}/prefixes/shared/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    fresh = rebuilt.json()
    assert fresh["stale"] is False and gone not in fresh["ids"] and len(fresh["ids"]) == 4
    assert fresh["pool_version"] == http.get(f"/v1/pools/{pool}").json()["version"]
    assert fresh["created_at"] == made["created_at"] <= fresh["updated_at"]
    assert "rewritten entirely" in fresh["prefix_prompt"] or made["ids"][0] not in fresh["ids"]
    assert_prefix_first(select(http, pool, query="my car broke down", k=3, prefix="shared"), fresh)

    assert http.delete(f"/v1/pools/{pool}/prefixes/shared").status_code == 204
    assert_error(http.get(f"/v1/pools/{pool}/prefixes/shared"), 404, "not_found")
    assert_error(http.delete(f"/v1/pools/{pool}/prefixes/shared"), 404, "not_found")
    missing = http.post(f"/v1/pools/{pool}/select", json={"query": "x", "prefix": "shared"})
    assert_error(missing, 404, "not_found")
    assert http.get(f"/v1/pools/{pool}").json()["prefixes"] == []


def test_a_prefix_survives_a_restart_byte_for_byte(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    try:
        with server.client() as http:
            pool = new_pool(http, "kept", 30)
            made = create(http, pool, name="p", k=3, target={"texts": QUERIES})
            before = select(http, pool, query="ferries", k=2, prefix="p")
        server.stop()
        server.start()
        with server.client() as http:
            assert http.get(f"/v1/pools/{pool}/prefixes/p").json() == made
            after = select(http, pool, query="ferries", k=2, prefix="p")
        assert after["prompt"] == before["prompt"]
        assert after["prefix"]["prefix_hash"] == made["prefix_hash"]
    finally:
        server.ensure_stopped()


def kernel_mmd2(chosen: np.ndarray, query: np.ndarray, tau: float) -> float:
    """Naive softmax-kernel MMD^2 of the uniform set ``chosen: (n, d)`` to one ``query``."""
    within = np.exp((chosen @ chosen.T - 1.0) / tau)
    cross = np.exp((chosen @ query - 1.0) / tau)
    return float(within.mean() - 2.0 * cross.mean() + 1.0)


def test_the_bounds_are_the_whole_prompts(http: httpx.Client) -> None:
    """mmd2 is the MMD^2 of prefix + slice to the query, slice_mmd2 the slice's alone
    (recomputed naively from the hashing embedder the server runs)."""
    pool = new_pool(http, "bounds")
    made = create(http, pool, name="p", k=5, target={"texts": QUERIES}, joint=False)
    query = "is the ferry on time"
    chosen = select(http, pool, query=query, k=3, prefix="p", joint=False, tau=0.3)
    by_id = {example["id"]: example["input"] for example in make_examples(60)}
    embedder = selector.HashingEmbedder(64)
    q = embedder.embed([query])[0].astype(np.float64)
    slice_ids = [example["id"] for example in chosen["examples"]]
    both = embedder.embed([by_id[i] for i in made["ids"] + slice_ids]).astype(np.float64)
    alone = embedder.embed([by_id[i] for i in slice_ids]).astype(np.float64)
    assert chosen["mmd2"] == pytest.approx(kernel_mmd2(both, q, 0.3), abs=1e-5)
    assert chosen["prefix"]["slice_mmd2"] == pytest.approx(kernel_mmd2(alone, q, 0.3), abs=1e-5)
    assert chosen["mmd"] == pytest.approx(np.sqrt(chosen["mmd2"]), abs=1e-6)


@pytest.fixture(scope="module")
def stable(sampling: Server) -> tuple[str, dict[str, Any]]:
    with sampling.client() as http:
        pool = new_pool(http, "stable")
        return pool, create(
            http, pool, name="p", k=6, target={"pool": pool}, template="Q: {input}\nA: {output}"
        )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80
    ),
    k=st.integers(1, 5),
    messages=st.booleans(),
)
def test_the_prefix_block_is_byte_identical_across_queries(
    http: httpx.Client, stable: tuple[str, dict[str, Any]], query: str, k: int, messages: bool
) -> None:
    pool, made = stable
    fmt = "messages" if messages else "text"
    body = {"query": query, "k": k, "prefix": "p", "format": fmt, "system": "Answer briefly."}
    first, second = select(http, pool, **body), select(http, pool, **body)
    assert first["prompt"] == second["prompt"]
    assert_prefix_first(first, made)
    assert first["prompt"].startswith(made["prefix_prompt"] + "\n\nQ: ")  # its template
    assert first["prompt"].endswith(f"Q: {query}\nA:")  # the query template follows it
    if messages:
        head = first["messages"][: first["prefix"]["prefix_messages"]]
        assert head[0] == {"role": "system", "content": "Answer briefly."}
        assert len(head) == 1 + 2 * 6
        assert [m["content"] for m in head[1::2]] == [
            line.split("\nA: ")[0] + "\nA:" for line in made["prefix_prompt"].split("\n\n")
        ]
        assert len(first["messages"]) == len(head) + 2 * k + 1
        assert first["messages"][-1]["role"] == "user"
    else:
        assert first["messages"] is None and first["prefix"]["prefix_messages"] is None


def test_a_batch_with_a_prefix_is_its_single_selections(
    http: httpx.Client, stable: tuple[str, dict[str, Any]]
) -> None:
    pool, made = stable
    body = {"k": 3, "prefix": "p", "format": "messages"}
    batch = http.post(f"/v1/pools/{pool}/select/batch", json={**body, "queries": QUERIES})
    assert batch.status_code == 200, batch.text
    for query, result in zip(QUERIES, batch.json()["results"], strict=True):
        single = select(http, pool, query=query, **body)
        assert_prefix_first(result, made)
        assert (result["prompt"], result["messages"]) == (single["prompt"], single["messages"])
        assert [e["id"] for e in result["examples"]] == [e["id"] for e in single["examples"]]
        numbers = ("slice_mmd2", "slice_mmd")
        for name, value in result["prefix"].items():  # floats to rounding (batched kernels)
            assert value == (
                pytest.approx(single["prefix"][name]) if name in numbers else single["prefix"][name]
            )
        assert result["mmd2"] == pytest.approx(single["mmd2"], abs=1e-6)
    unknown = http.post(f"/v1/pools/{pool}/select/batch", json={"queries": ["a"], "prefix": "no"})
    assert_error(unknown, 404, "not_found")


def test_traffic_sampling_and_rebuild_from_it(http: httpx.Client) -> None:
    pool = new_pool(http, "traffic")
    # Nothing recorded yet: a clear 409, for a creation and a rebuild alike.
    empty = http.post(f"/v1/pools/{pool}/prefixes", json={"name": "t", "k": 3, "target": "traffic"})
    assert_error(empty, 409, "no_traffic")
    create(http, pool, name="t", k=3, target={"texts": ["boats"]})
    assert_error(
        http.post(f"/v1/pools/{pool}/prefixes/t/rebuild", json={"target": "traffic"}),
        409,
        "no_traffic",
    )
    for number in range(TRAFFIC + 5):  # more than the reservoir holds
        select(http, pool, query=f"trains query {number}", k=2)
    batch = http.post(f"/v1/pools/{pool}/select/batch", json={"queries": ["a", "b"], "k": 2})
    assert batch.status_code == 200
    rebuilt = http.post(f"/v1/pools/{pool}/prefixes/t/rebuild", json={"target": "traffic"})
    assert rebuilt.status_code == 200, rebuilt.text
    assert (rebuilt.json()["source"], rebuilt.json()["target_size"]) == ("traffic", TRAFFIC)
    # A rebuild without a body keeps the last target: the traffic, now with more in it.
    select(http, pool, query="one more", k=2, prefix="t")
    again = http.post(f"/v1/pools/{pool}/prefixes/t/rebuild").json()
    assert (again["source"], again["target_size"]) == ("traffic", TRAFFIC)
    # A deleted pool forgets its traffic and its prefixes.
    assert http.delete(f"/v1/pools/{pool}").status_code == 204
    new_pool(http, pool)
    assert http.get(f"/v1/pools/{pool}/prefixes").json() == {"prefixes": []}
    refused = http.post(
        f"/v1/pools/{pool}/prefixes", json={"name": "t", "k": 3, "target": "traffic"}
    )
    assert_error(refused, 409, "no_traffic")


def test_traffic_sampling_is_off_by_default(client: httpx.Client, pool: str) -> None:
    client.post(f"/v1/pools/{pool}/select", json={"query": "trains", "k": 2})
    refused = client.post(
        f"/v1/pools/{pool}/prefixes", json={"name": "t", "k": 3, "target": "traffic"}
    )
    assert_error(refused, 409, "no_traffic")
    assert "MMDSHOT_TRAFFIC_SAMPLE" in refused.json()["error"]["message"]


def test_bad_input_gets_4xx_json_errors(http: httpx.Client) -> None:
    pool, other = new_pool(http, "bad"), new_pool(http, "bad-other", 20)
    create(http, pool, name="p", k=4, target={"texts": QUERIES})
    create(http, other, name="theirs", k=2, target={"pool": pool})
    base = f"/v1/pools/{pool}"
    cases: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
        (
            "post",
            f"{base}/prefixes",
            {"name": "p", "k": 2, "target": {"texts": ["x"]}},
            409,
            "conflict",
        ),
        (
            "post",
            f"{base}/prefixes",
            {"name": "q", "k": 0, "target": {"texts": ["x"]}},
            422,
            "validation_error",
        ),
        (
            "post",
            f"{base}/prefixes",
            {"name": "q", "k": 999, "target": {"texts": ["x"]}},
            422,
            "validation_error",
        ),
        (
            "post",
            f"{base}/prefixes",
            {"name": "q", "k": 61, "target": {"texts": ["x"]}},
            422,
            "invalid_input",
        ),
        (
            "post",
            f"{base}/prefixes",
            {"name": "bad name", "k": 2, "target": {"texts": ["x"]}},
            422,
            "validation_error",
        ),
        ("post", f"{base}/prefixes", {"name": "q", "k": 2}, 422, "validation_error"),
        (
            "post",
            f"{base}/prefixes",
            {"name": "q", "k": 2, "target": "everything"},
            422,
            "validation_error",
        ),
        (
            "post",
            f"{base}/prefixes",
            {"name": "q", "k": 2, "target": {"pool": "no-such"}},
            404,
            "not_found",
        ),
        (
            "post",
            "/v1/pools/no-such/prefixes",
            {"name": "q", "k": 2, "target": {"texts": ["x"]}},
            404,
            "not_found",
        ),
        ("get", "/v1/pools/no-such/prefixes", None, 404, "not_found"),
        ("get", f"{base}/prefixes/nope", None, 404, "not_found"),
        ("get", f"{base}/prefixes/theirs", None, 404, "not_found"),
        ("post", f"{base}/prefixes/nope/rebuild", None, 404, "not_found"),
        ("post", f"{base}/prefixes/p/rebuild", {"target": {"texts": []}}, 422, "validation_error"),
        ("post", f"{base}/select", {"query": "x", "prefix": "nope"}, 404, "not_found"),
        ("post", f"{base}/select", {"query": "x", "prefix": "theirs"}, 404, "not_found"),
        ("post", f"{base}/select", {"query": "x", "prefix": "p", "k": 57}, 422, "invalid_input"),
        ("post", f"{base}/select", {"query": "x", "prefix": "p", "k": 0}, 422, "validation_error"),
        ("post", f"{base}/select", {"query": "x", "prefix": "bad name"}, 422, "validation_error"),
    ]
    for method, path, body, status, kind in cases:
        answer = http.request(method, path, json=body)
        assert_error(answer, status, kind)
    # Slice + prefix exactly the pool size is fine.
    assert len(select(http, pool, query="x", prefix="p", k=56)["examples"]) == 56


def test_store_keeps_prefixes_and_tells_them_stale(store: Store) -> None:
    """The prefix table on SQLite and PostgreSQL: stale when an example of the prefix is
    rewritten or deleted (not another one), a replace clears it, the pool takes its
    prefixes with it."""
    store.create_pool("p", "", "m", test_store.DIMENSION)
    store.upsert("p", [test_store.example(number) for number in range(4)])

    def saved(replace: bool) -> None:
        rows = store.read_pool("p")
        snapshot = Snapshot("p", rows, selector.Pool.from_arrays(rows.vectors), {})
        examples = [
            {"id": rows.ids[i], "input": rows.inputs[i], "output": "", "label": None}
            for i in (0, 1)
        ]
        request = schemas.PrefixCreate(name="a", k=2, target=schemas.TargetIn(texts=["x"]))
        report = {"prompt": "block", "tokens": 1, "source": "texts", "target_size": 1, "mmd2": 0.1}
        built = prefixes.Built(request, examples, report, "hash")
        prefixes._save(store, snapshot, built, replace)

    saved(replace=False)
    with pytest.raises(ApiError, match="already exists"):
        saved(replace=False)
    assert prefixes.read_prefix(store, "p", "a").stale is False
    store.upsert("p", [test_store.example(2, text="changed, not in the prefix")])
    assert prefixes.read_prefix(store, "p", "a").stale is False
    store.upsert("p", [test_store.example(1, text="changed, in the prefix")])
    assert prefixes.read_prefix(store, "p", "a").stale is True
    saved(replace=True)
    assert prefixes.read_prefix(store, "p", "a").stale is False
    store.delete_example("p", "ex-0")
    assert [p.stale for p in prefixes.list_prefixes(store, "p")] == [True]
    store.delete_pool("p")
    store.create_pool("p", "", "m", test_store.DIMENSION)
    assert prefixes.list_prefixes(store, "p") == []
    with pytest.raises(ApiError, match="does not exist"):
        prefixes.delete_prefix(store, "p", "a")
