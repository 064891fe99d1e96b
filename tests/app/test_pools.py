"""Pools, examples and imports over real HTTP."""

from __future__ import annotations

import json

import httpx

from tests.app.conftest import NDJSON, assert_error, jsonl, make_examples, wait_for_job


def test_pool_lifecycle(client: httpx.Client) -> None:
    created = client.post("/v1/pools", json={"name": "life", "description": "d"})
    assert created.status_code == 201
    assert created.json()["version"] == 1 and created.json()["size"] == 0
    assert_error(client.post("/v1/pools", json={"name": "life"}), 409, "conflict")
    assert "life" in [pool["name"] for pool in client.get("/v1/pools").json()["pools"]]
    assert client.get("/v1/pools/life").json()["description"] == "d"
    assert client.delete("/v1/pools/life").status_code == 204
    assert_error(client.get("/v1/pools/life"), 404, "not_found")
    assert_error(client.delete("/v1/pools/life"), 404, "not_found")


def test_upsert_duplicates_and_versions(client: httpx.Client, pool: str) -> None:
    before = client.get(f"/v1/pools/{pool}").json()
    assert before["size"] == 60 and before["labelled"]
    again = make_examples(3)
    again[0]["id"] = "another-id"  # same content under another id: still a duplicate
    changed = {**make_examples(1, start=1)[0], "output": "changed", "label": "neutral"}
    fresh = make_examples(1, start=1000)[0]
    result = client.post(f"/v1/pools/{pool}/examples", json={"examples": [*again, changed, fresh]})
    body = result.json()
    assert result.status_code == 200, body
    assert [(d["position"], d["existing_id"]) for d in body["duplicates"]] == [
        (0, "ex-0"),
        (1, "ex-1"),
        (2, "ex-2"),
    ]
    assert body["updated"] == ["ex-1"] and body["inserted"] == ["ex-1000"]
    assert body["version"] == before["version"] + 1
    assert client.get(f"/v1/pools/{pool}/examples/ex-1").json()["output"] == "changed"
    unchanged = client.post(f"/v1/pools/{pool}/examples", json={"examples": [fresh]}).json()
    assert unchanged["version"] == body["version"] and unchanged["duplicates"]

    assert client.delete(f"/v1/pools/{pool}/examples/ex-1000").status_code == 204
    after = client.get(f"/v1/pools/{pool}").json()
    assert after["version"] == body["version"] + 1 and after["size"] == 60
    assert_error(client.get(f"/v1/pools/{pool}/examples/ex-1000"), 404, "not_found")
    assert_error(client.delete(f"/v1/pools/{pool}/examples/ex-1000"), 404, "not_found")


def test_examples_without_id_get_a_content_id(client: httpx.Client, pool: str) -> None:
    body = client.post(
        f"/v1/pools/{pool}/examples", json={"examples": [{"input": "no id here", "output": "x"}]}
    ).json()
    (example_id,) = body["inserted"]
    stored = client.get(f"/v1/pools/{pool}/examples/{example_id}").json()
    assert stored["input"] == "no id here" and stored["token_count"] > 0


def test_cursor_paging(client: httpx.Client, pool: str) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 25, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/pools/{pool}/examples", params=params).json()
        seen += [example["id"] for example in page["examples"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"ex-{i}" for i in range(60)]
    assert_error(client.get(f"/v1/pools/{pool}/examples", params={"cursor": "%%"}), 422)
    assert_error(client.get(f"/v1/pools/{pool}/examples", params={"limit": 0}), 422)


def test_upsert_batch_limit(client: httpx.Client, pool: str) -> None:
    too_many = make_examples(101, start=5000)  # the shared server allows 100 per call
    assert_error(
        client.post(f"/v1/pools/{pool}/examples", json={"examples": too_many}),
        413,
        "payload_too_large",
    )


def test_import_jsonl_keeps_good_lines_and_reports_bad_ones(
    client: httpx.Client, pool: str
) -> None:
    good = make_examples(30, start=100)
    lines = jsonl(good[:10]) + b"{not json\n" + jsonl(good[10:20])
    lines += json.dumps({"input": ""}).encode() + b"\n" + jsonl(good[20:])
    started = client.post(f"/v1/pools/{pool}/imports", content=lines, headers=NDJSON)
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"/v1/jobs/{started.json()['id']}"
    job = wait_for_job(client, started.json()["id"])
    assert job["status"] == "succeeded"
    assert job["total"] == 32 and job["done"] == 32 and job["inserted"] == 30
    assert [error["line"] for error in job["errors"]] == [11, 22]
    assert client.get(f"/v1/pools/{pool}").json()["size"] == 90


def test_import_json_array(client: httpx.Client, pool: str) -> None:
    records = [*make_examples(5, start=200), {"input": 3}, *make_examples(2)]
    started = client.post(f"/v1/pools/{pool}/imports", json=records)
    job = wait_for_job(client, started.json()["id"])
    assert job["inserted"] == 5 and job["duplicates"] == 2
    assert [error["line"] for error in job["errors"]] == [6]


def test_import_errors(client: httpx.Client, pool: str) -> None:
    assert_error(
        client.post("/v1/pools/missing/imports", content=b"{}\n", headers=NDJSON), 404, "not_found"
    )
    assert_error(
        client.post(f"/v1/pools/{pool}/imports", content=b"\n\n", headers=NDJSON),
        422,
        "invalid_input",
    )
    assert_error(
        client.post(f"/v1/pools/{pool}/imports", content=b"", headers=NDJSON), 422, "invalid_input"
    )
    # The body is parsed by the job: a broken JSON array fails it, nothing stored; a line
    # that is not UTF-8 (or nested too deeply) is one bad line.
    for broken in (b"[1, ", b"[" * 5000 + b"]" * 5000, b'[{"input": "a"}] x'):
        job = wait_for_job(
            client,
            client.post(f"/v1/pools/{pool}/imports", content=broken, headers=NDJSON).json()["id"],
        )
        assert job["status"] == "failed" and "not a JSON array" in job["message"], job
        assert job["inserted"] == 0
    lines = b"\xff\xfe\n" + b'{"input": ' * 3000 + b"\n" + jsonl(make_examples(1, start=900))
    job = wait_for_job(
        client, client.post(f"/v1/pools/{pool}/imports", content=lines, headers=NDJSON).json()["id"]
    )
    assert (job["status"], job["total"], job["inserted"]) == ("succeeded", 3, 1)
    assert [error["line"] for error in job["errors"]] == [1, 2]
    assert client.get(f"/v1/pools/{pool}").json()["size"] == 61
    assert_error(client.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "not_found")
    assert_error(client.get("/v1/jobs/not-a-job"), 422, "validation_error")
