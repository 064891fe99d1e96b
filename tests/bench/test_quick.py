"""Every benchmark runs end to end in its quick mode, so the scripts never rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import http, icl, quality, report, speed


def test_speed_quick(tmp_path: Path) -> None:
    result = speed.write(tmp_path / "speed.json", quick=True)
    small = result["sizes"]["2000"]
    assert small["naive_agrees_with_exact"] is True
    assert small["exact_ms"] > 0 and small["langchain_semantic_ms"] > 0
    assert small["openicl_topk_ms"] > 0 and small["openicl_topk_batch_per_query_ms"] > 0
    assert "prefiltered_ms" in result["sizes"]["60000"]
    assert "openicl_topk_ms" not in result["sizes"]["60000"]  # peers run on peer_sizes only
    assert result["peer_versions"]["openicl"] is not None
    assert (tmp_path / "speed-quick.png").stat().st_size > 0
    assert json.loads((tmp_path / "speed.json").read_text())["k"] == 8
    assert set(result["kinds"]) == {"isotropic", "clustered", "near-duplicates", "tweets"}
    for rows in result["kinds"].values():
        assert set(rows) == {"2000", "20000"}
        assert all(row["naive_agrees_with_exact"] is True for row in rows.values())
        assert all(row["matvec_ms"] > 0 and row["ratio_to_naive"] > 0 for row in rows.values())
    assert result["kinds"]["tweets"]["20000"]["real_rows"] < 20_000  # 300 tweets, tiled


@pytest.mark.slow
def test_quality_quick(tmp_path: Path) -> None:
    result = quality.write(tmp_path / "quality.json", quick=True)
    for method in ("random", "knn", "mmr", "mmd"):
        assert result["single_query"][method][0] > 0
    assert result["exhaustive"]["swap_mean_excess_pct"] >= -1e-6


def test_http_quick(tmp_path: Path) -> None:
    result = http.write(tmp_path / "http.json", quick=True)
    assert set(result["concurrency"]) == {"1", "8", "32"}
    assert all(level["p50_ms"] > 0 for level in result["concurrency"].values())


@pytest.mark.slow
def test_icl_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_corpus(limit: int | None = None) -> None:
        raise AssertionError("the quick mode embeds all 37k tweets (20 minutes on a fresh CPU)")

    monkeypatch.setattr(icl, "tweet_embeddings", whole_corpus)
    result = icl.write(tmp_path / "icl.json", quick=True)
    assert result["label_tokens"] == {"negative": 3524, "neutral": 9174, "positive": 2731}
    runs = {(run["method"], run["k"]): run for run in result["runs"]}
    assert {("zero-shot", 0), ("knn", 2), ("mmdshot joint", 2)} <= set(runs)
    assert all(run["n"] == 3 and 0 <= run["accuracy"] <= 1 for run in runs.values())
    assert runs["knn", 2]["ci95"][0] <= runs["knn", 2]["accuracy"] <= runs["knn", 2]["ci95"][1]
    assert result["calibration"]["tau"] in (0.1,)
    assert 0 <= result["calibration"]["knn_accuracy"] <= 1  # scored by selector.calibrate
    assert (tmp_path / "icl-quick.png").stat().st_size > 0
    section = report.icl_section(json.loads((tmp_path / "icl.json").read_text()))
    assert "| knn | 2 |" in section and "mmdshot joint" in section


def test_report_renders_every_section(tmp_path: Path) -> None:
    speed.write(tmp_path / "speed.json", quick=True)
    http.write(tmp_path / "http.json", quick=True)
    report.write(tmp_path, tmp_path / "benchmarks.md")
    text = (tmp_path / "benchmarks.md").read_text()
    assert "## Speed" in text and "## HTTP selection" in text
    assert "| OpenICL TopK |" in text and "TopkRetriever is a nearest-neighbour search" in text
