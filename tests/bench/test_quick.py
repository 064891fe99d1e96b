"""Every benchmark runs end to end in its quick mode, so the scripts never rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import (
    direct_path,
    http,
    icl,
    icl_peers,
    products,
    quality,
    report,
    soak,
    speed,
    threads,
)


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


def test_direct_path_quick() -> None:
    row = direct_path.compare("near-duplicates", 600, calls=12)
    assert row["same_up_to_float32_ties"] is True
    assert row["direct_ms"] > 0 and row["speculated_ms"] > 0 and row["naive_ms"] > 0
    assert row["direct_over_speculated"] > 0


@pytest.mark.slow
def test_quality_quick(tmp_path: Path) -> None:
    result = quality.write(tmp_path / "quality.json", quick=True)
    for method in ("random", "knn", "mmr", "mmd"):
        assert result["single_query"][method][0] > 0
    assert result["exhaustive"]["swap_mean_excess_pct"] >= -1e-6


def test_http_quick(tmp_path: Path) -> None:
    result = http.write(tmp_path / "http.json", quick=True)
    assert json.loads((tmp_path / "http.json").read_text()) == json.loads(json.dumps(result))
    assert (result["pool_size"], result["k"], result["tool"]) == (400, 8, "a Python thread loop")
    levels = result["concurrency"]
    assert set(levels) == {"1", "8", "32", "64"}
    for name, level in levels.items():
        assert 0 < level["p50_ms"] <= level["p99_ms"] and level["non_2xx"] == 0, name
    # Little's law on a closed loop: callers = throughput x latency. One caller: the
    # throughput is about 1 / latency; four (the quick mode's cap): at most about 4 / latency.
    one = levels["1"]
    assert 0.3 <= one["requests_per_s"] * one["p50_ms"] / 1000 <= 1.2, one
    for name in ("8", "32", "64"):
        level = levels[name]
        assert level["requests_per_s"] * level["p50_ms"] / 1000 <= 4 * 1.2, level
    assert "skipped" in result["peer"] and result["ratio_to_peer"] == {}
    imported = result["import"]
    assert imported["examples"] == imported["inserted"] == 200
    assert imported["import_examples_per_s"] > 0 and imported["encode_examples_per_s"] > 0
    assert imported["ratio"] == pytest.approx(
        imported["import_examples_per_s"] / imported["encode_examples_per_s"]
    )
    timings = result["warm_request_timings_ms"]
    parts = timings["embed_ms"] + timings["scan_ms"] + timings["select_ms"] + timings["refine_ms"]
    assert 0 < parts <= timings["total_ms"] * 1.01 + 0.05


def test_soak_quick(tmp_path: Path) -> None:
    result = soak.write(tmp_path / "soak.json", quick=True)
    assert len(result["rounds"]) == 2
    for round_ in result["rounds"]:
        selections, writers = round_["selections"], round_["writers"]
        assert selections["statuses"].get("200", 0) > 0
        assert set(selections["statuses"]) <= {"200", "429"}, selections["statuses"]
        assert writers["calls"] > 0 and writers["statuses"].get("200", 0) > 0
        assert set(writers["statuses"]) <= {"200", "429"}, writers["statuses"]
    assert result["server_errors"] == 0
    assert result["baseline"]["per_s"] > 0 and result["throughput_ratio"] > 0
    written = sum(r["writers"]["statuses"].get("200", 0) for r in result["rounds"])
    assert result["pool_size_after"] == result["pool_size"] + written * soak.UPSERT_BATCH
    assert set(result["rss_mb"]) == {"0", "1.5", "3", "6"}
    assert all(mb > 10 for mb in result["rss_mb"].values())
    section = report.soak_section(json.loads((tmp_path / "soak.json").read_text()))
    assert "| baseline before (no writers) |" in section and "Server errors" in section
    assert "| baseline after (no writers) |" in section
    assert result["baseline_before"]["per_s"] > 0


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
    calibration = result["calibration"]
    accuracy = calibration["accuracy_by_tau"]
    assert set(accuracy) == {0.1, 0.5} and all(0 <= a <= 1 for a in accuracy.values())
    # The best validation accuracy, ties to the larger tau; and that tau runs on the test split.
    assert calibration["tau"] == max(accuracy, key=lambda tau: (accuracy[tau], tau))
    assert calibration["beats_knn"] == (accuracy[calibration["tau"]] > calibration["knn_accuracy"])
    calibrated = [run for run in result["runs"] if run["method"].endswith("calibrated tau")]
    assert [run["n"] for run in calibrated] == [3]
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
    # A person's note beside a result survives regeneration, at the end of its own section.
    (tmp_path / "speed.note.md").write_text("*A note on the speed run.*\n")
    report.write(tmp_path, tmp_path / "benchmarks.md")
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.index("## Speed") < text.index("*A note on the speed run.*")
    assert text.index("*A note on the speed run.*") < text.index("## HTTP selection")


@pytest.mark.slow
def test_icl_peers_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = icl_peers.write(tmp_path / "icl-peers.json", quick=True)
    assert result["backend"] == "transformers"  # the test suite never needs llama.cpp
    runs = {(run["task"], run["method"], run["k"]): run for run in result["runs"]}
    for task in ("sentiment", "opinion"):
        for method in ("knn", "mmdshot joint", "set-bsr", "dpp", "mmr tuned"):
            run = runs[task, method, 2]
            assert run["n"] == 3 and 0 <= run["accuracy"] <= 1
            assert run["selection_ms_per_query"] > 0 and len(run["mmd"]) == 3
            assert all(0 <= m <= 2 for m in run["mmd"])
        tuning = result["tasks"][task]["mmr_tuning"]
        assert set(tuning["purity"]) == {"0.5/20", "0.9/20"}
        assert tuning["chosen"]["fetch_k"] == 20
        assert runs[task, "mmr tuned", 2]["options"] == tuning["chosen"]
        study = result["tasks"][task]["input_only_study"]
        assert study["chosen"] in study["purity"] and "knn" in study["purity"]
        assert runs[task, "input-only tuned", 2]["options"] == study["setting"]
        assert set(result["tasks"][task]["test_label_share"]) == set(
            result["tasks"][task]["labels"]
        )
    assert result["tasks"]["opinion"]["labels"] == ["neutral", "opinion"]
    assert "reported_bound" in runs["sentiment", "mmdshot joint", 2]
    prefix = {row["method"]: row for row in result["prefix_runs"]}
    assert set(prefix) == {"prefix 4 + slice 4", "prefix 6 + slice 2", "prefix 8 + slice 0"}
    for row in prefix.values():
        assert row["n"] == 3 and 0 < row["cached_prompt_share"] < 1
        assert 0 < row["cached_demonstration_share"] <= 1
    assert prefix["prefix 8 + slice 0"]["cached_demonstration_share"] == pytest.approx(1, abs=0.02)
    shares = [prefix[f"prefix {p} + slice {8 - p}"]["cached_prompt_share"] for p in (4, 6, 8)]
    assert shares == sorted(shares)
    section = report.icl_peers_section(json.loads((tmp_path / "icl-peers.json").read_text()))
    assert "| set-bsr |" in section and "| dpp |" in section

    # --resume keeps every row of the same settings and scores nothing again.
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a row was scored again")

    monkeypatch.setattr(icl_peers, "evaluate", never)
    monkeypatch.setattr(icl_peers, "evaluate_prefix", never)
    again = icl_peers.write(tmp_path / "icl-peers.json", quick=True, resume=True)
    assert again["runs"] == result["runs"] and again["prefix_runs"] == result["prefix_runs"]
    assert all(row["measured"] for row in again["runs"])
    # Other settings: nothing of the earlier file is reused.
    changed = json.loads((tmp_path / "icl-peers.json").read_text()) | {"sample": 1}
    (tmp_path / "icl-peers.json").write_text(json.dumps(changed))
    with pytest.raises(AssertionError, match="scored again"):
        icl_peers.write(tmp_path / "icl-peers.json", quick=True, resume=True)


def test_threads_quick(tmp_path: Path) -> None:
    result = threads.write(tmp_path / "threads.json", quick=True)
    assert json.loads((tmp_path / "threads.json").read_text()) == json.loads(json.dumps(result))
    assert set(result["per_s"]) == {"1", "2"}
    for values in result["per_s"].values():
        assert len(values) == result["rounds"] and all(value > 0 for value in values)
    medians = result["median_per_s"]
    assert result["two_over_one"] == pytest.approx(medians["2"] / medians["1"])
    section = report.threads_section(result)
    assert f"{result['two_over_one']:.2f}x" in section and "| 2 |" in section


def test_products_quick() -> None:
    result = products.run(quick=True)
    assert set(result["products"]["2000"]) >= {"numpy_mv", "torch_mm_rows_T_P8", "numpy_P8"}
    assert all(value > 0 for value in result["products"]["2000"].values())
    kinds = {row["kind"] for row in result["selections"]}
    assert kinds == {"isotropic", "clustered", "near-duplicates", "tweets"}
    for row in result["selections"]:
        # columns_from 0: every verification product went through torch, and still the
        # same subsets (float32 ties aside)
        assert row["same_up_to_float32_ties"] is True
        assert row["numpy_ms"] > 0 and row["torch_ms"] > 0
