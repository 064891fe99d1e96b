"""Per-pool calibration over real HTTP: the job, the result kept with the pool (also across a
restart), selections that use it, the CLI, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

import selector
from app.cli import main
from tests.app.conftest import Server, assert_error, make_examples, wait_for_job

HASHING_DIMENSION = 64  # the servers' MMDSHOT_HASHING_DIMENSION (the default)


def calibrate(client: httpx.Client, pool: str, **body: Any) -> dict[str, Any]:
    """POST a calibration and wait for its job to succeed; returns the job."""
    started = client.post(f"/v1/pools/{pool}/calibrate", json=body)
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"/v1/jobs/{started.json()['id']}"
    job = wait_for_job(client, started.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def select(client: httpx.Client, pool: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/pools/{pool}/select", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def library_calibration(
    examples: list[dict[str, Any]], k: int, taus: list[float], validation_size: int
) -> selector.Calibration:
    """What the library answers on the pool the service holds (the hashing embedder is
    deterministic, so the vectors are the service's)."""
    vectors = selector.HashingEmbedder(HASHING_DIMENSION).embed([e["input"] for e in examples])
    pool = selector.Pool.from_arrays(vectors, labels=[e["label"] for e in examples])
    return selector.calibrate(pool, k, taus=taus, validation_size=validation_size)


def test_calibration_is_kept_with_the_pool_and_used_by_selections(
    client: httpx.Client, pool: str
) -> None:
    taus = [0.05, 0.2, 1.0]
    job = calibrate(client, pool, k=4, taus=taus, validation_size=20)
    assert job["kind"] == "calibration" and job["done"] == job["total"] == 4
    result = job["calibration"]
    expected = library_calibration(make_examples(60), 4, taus, 20)
    assert result["tau"] == expected.tau and result["scorer"] == "label_purity"
    assert result["scores"] == [
        {"tau": tau, "score": pytest.approx(score)} for tau, score in expected.scores.items()
    ]
    assert result["knn_score"] == pytest.approx(expected.knn_score)
    assert result["beats_knn"] == expected.beats_knn
    assert (result["k"], result["validation_size"], result["seed"]) == (4, 20, 0)
    assert result["kernel"] == "softmax"
    info = client.get(f"/v1/pools/{pool}").json()
    assert result["pool_version"] == info["version"]
    assert info["calibration"] == {**result, "stale": False}

    calibrated = select(client, pool, query="trains negative", k=3)
    assert calibrated["tau"] == result["tau"] and calibrated["tau_source"] == "calibrated"
    asked = select(client, pool, query="trains negative", k=3, tau=0.3)
    assert asked["tau"] == 0.3 and asked["tau_source"] == "request"
    for other in ({"method": "knn"}, {"kernel": "rbf"}):
        assert select(client, pool, query="boats", k=3, **other)["tau_source"] == "default"
    batch = client.post(
        f"/v1/pools/{pool}/select/batch", json={"queries": ["cars", "planes"], "k": 2}
    ).json()
    assert [(r["tau"], r["tau_source"]) for r in batch["results"]] == [
        (result["tau"], "calibrated")
    ] * 2
    inline = client.post(
        "/v1/select", json={"query": "cars", "k": 1, "candidates": make_examples(3)}
    ).json()
    assert inline["tau"] == 0.2 and inline["tau_source"] == "default"


def test_a_changed_pool_reports_its_calibration_stale_and_still_uses_it(
    client: httpx.Client, pool: str
) -> None:
    first = calibrate(client, pool, k=2, taus=[0.1], validation_size=10)["calibration"]
    added = client.post(f"/v1/pools/{pool}/examples", json={"examples": make_examples(1, 100)})
    assert added.status_code == 200
    info = client.get(f"/v1/pools/{pool}").json()
    assert info["calibration"]["stale"] is True
    assert info["calibration"]["pool_version"] == first["pool_version"] == info["version"] - 1
    chosen = select(client, pool, query="cars", k=2)
    assert (chosen["tau"], chosen["tau_source"]) == (0.1, "calibrated")
    again = calibrate(client, pool, k=2, taus=[0.5], validation_size=10)["calibration"]
    info = client.get(f"/v1/pools/{pool}").json()
    assert info["calibration"] == {**again, "stale": False} and again["tau"] == 0.5
    assert select(client, pool, query="cars", k=2)["tau"] == 0.5


def test_an_unlabelled_pool_is_scored_by_output_similarity(client: httpx.Client) -> None:
    examples = [{k: v for k, v in e.items() if k != "label"} for e in make_examples(40)]
    client.post("/v1/pools", json={"name": "unlabelled-outputs"})
    stored = client.post("/v1/pools/unlabelled-outputs/examples", json={"examples": examples})
    assert stored.status_code == 200
    result = calibrate(client, "unlabelled-outputs", k=3, taus=[0.1, 0.5], validation_size=8)[
        "calibration"
    ]
    assert result["scorer"] == "output_similarity"
    embedder = selector.HashingEmbedder(HASHING_DIMENSION)
    outputs = torch.from_numpy(embedder.embed([e["output"] for e in examples]))

    def output_similarity(rows: np.ndarray, chosen: np.ndarray) -> float:
        return selector.output_similarity(outputs[rows], outputs[chosen])

    pool = selector.Pool.from_arrays(embedder.embed([e["input"] for e in examples]))
    expected = selector.calibrate(
        pool, 3, taus=[0.1, 0.5], validation_size=8, scorer=output_similarity
    )
    assert [entry["score"] for entry in result["scores"]] == pytest.approx(
        list(expected.scores.values()), abs=1e-6
    )
    assert result["knn_score"] == pytest.approx(expected.knn_score, abs=1e-6)
    chosen = select(client, "unlabelled-outputs", query="cars", k=2)
    assert chosen["joint"] is False and chosen["tau_source"] == "calibrated"


@pytest.fixture
def unscorable(client: httpx.Client) -> str:
    """A pool whose examples have neither labels nor outputs."""
    examples = [{"id": e["id"], "input": e["input"]} for e in make_examples(30)]
    client.post("/v1/pools", json={"name": "unscorable"})
    client.post("/v1/pools/unscorable/examples", json={"examples": examples})
    return "unscorable"


@pytest.mark.parametrize(
    ("body", "status", "type_"),
    [
        ({"k": 60}, 422, "invalid_input"),  # the pool holds 60: none would be held out
        ({"k": 8, "validation_size": 53}, 422, "invalid_input"),  # 60 - 53 < 8
        ({"validation_size": 0}, 422, "validation_error"),
        ({"taus": []}, 422, "validation_error"),
        ({"taus": [0.1, 0]}, 422, "validation_error"),
        ({"taus": [-0.2]}, 422, "validation_error"),
        ({"taus": ["wide"]}, 422, "validation_error"),
        ({"k": 0}, 422, "validation_error"),
        ({"kernel": "softmax"}, 422, "validation_error"),  # unknown field
    ],
)
def test_bad_calibrations(
    client: httpx.Client, pool: str, body: dict[str, Any], status: int, type_: str
) -> None:
    response = client.post(f"/v1/pools/{pool}/calibrate", json=body)
    assert_error(response, status, type_)


def test_pools_that_cannot_be_calibrated(client: httpx.Client, unscorable: str) -> None:
    response = client.post(f"/v1/pools/{unscorable}/calibrate", json={"validation_size": 5})
    assert_error(response, 422, "invalid_input")
    assert "label" in response.json()["error"]["message"]
    assert_error(client.post("/v1/pools/nowhere/calibrate", json={}), 404, "not_found")
    client.post("/v1/pools", json={"name": "empty-calibration"})
    assert_error(client.post("/v1/pools/empty-calibration/calibrate", json={}), 422)
    assert_error(client.post("/v1/pools/bad name/calibrate", json={}), 422, "validation_error")
    assert client.get(f"/v1/pools/{unscorable}").json()["calibration"] is None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    yield running
    running.ensure_stopped()


def test_a_calibration_survives_a_restart(own_server: Server) -> None:
    with own_server.start().client() as client:
        client.post("/v1/pools", json={"name": "kept"})
        client.post("/v1/pools/kept/examples", json={"examples": make_examples(50)})
        job = calibrate(client, "kept", k=3, taus=[0.05, 0.5], validation_size=12)
        before = client.get("/v1/pools/kept").json()
    own_server.stop()
    with own_server.start().client() as client:
        assert client.get("/v1/pools/kept").json() == before
        assert client.get(f"/v1/jobs/{job['id']}").json() == job
        chosen = select(client, "kept", query="planes positive", k=3)
    assert before["calibration"]["tau"] == job["calibration"]["tau"] == chosen["tau"]
    assert chosen["tau_source"] == "calibrated"


def test_cli_calibrate(
    server: Server, client: httpx.Client, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calibrate", pool, "--k", "2", "--taus", "0.1", "0.3", "--validation-size", "9"]
    assert main([*argv, "--url", server.url]) == 0
    printed = capsys.readouterr().out
    tau = client.get(f"/v1/pools/{pool}").json()["calibration"]["tau"]
    assert f"{pool}: tau {tau:g}" in printed and "knn" in printed and "<- chosen" in printed
    assert main(["calibrate", "nowhere", "--url", server.url]) == 1
    assert "404" in capsys.readouterr().err
