"""Embedders: the fake is deterministic, the cache embeds a text once, the bundled model
loads offline."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from selector import (
    CachedEmbedder,
    HashingEmbedder,
    HFTokenCounter,
    SentenceTransformerEmbedder,
    embedding,
)
from selector.embedding import (
    OnnxSentenceEmbedder,
    content_hash,
    embed_sorted,
    length_order,
    load_sentence_embedder,
    pad_tokens,
)
from selector.errors import EmbeddingModelError, InvalidInputError


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(16)
        self.calls: list[list[str]] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return super().embed(texts)


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(24)
    first = embedder.embed(["the cat sat", "a dog ran", "the cat sat"])
    assert first.dtype == np.float32 and first.shape == (3, 24)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(
        first, HashingEmbedder(24).embed(["the cat sat", "a dog ran", "the cat sat"])
    )
    shared, unrelated = (embedder.embed(["the cat ran"]) @ first[:2].T)[0]
    assert shared > unrelated + 0.3


def test_cache_embeds_each_text_once() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_entries=3)
    out = cached.embed(["a", "b", "a"])
    assert inner.calls == [["a", "b"]]
    np.testing.assert_array_equal(out, HashingEmbedder(16).embed(["a", "b", "a"]))
    cached.embed(["b", "c"])
    assert inner.calls[-1] == ["c"]
    assert cached.hits == 1 and cached.misses == 3
    cached.embed(["d", "e"])  # evicts the oldest entries
    cached.embed(["a"])
    assert inner.calls[-1] == ["a"]
    assert content_hash("a") == content_hash("a") != content_hash("b")


def test_bad_model_path_is_a_model_error(tmp_path) -> None:
    with pytest.raises(EmbeddingModelError):
        SentenceTransformerEmbedder(tmp_path / "missing")


@pytest.mark.slow
def test_bundled_minilm_embeds_offline_and_counts_tokens(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder()
    vectors = embedder.embed(
        ["self-driving cars are safe", "autonomous vehicles are safe", "I like soup"]
    )
    assert vectors.shape == (3, 384) and embedder.dimension == 384
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    assert HFTokenCounter().count(["hello world, how are you?", ""]) == [7, 0]


ONNX_TEXTS = [
    "self-driving cars are safe",
    "",
    "émoji 🚗 naïve café, Übermensch",
    "word " * 400,  # past max_seq_length: truncated the same way by both backends
    "short",
    "a tweet about autonomous vehicles and their sensors, lidar, radar and cameras #av",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.slow
def test_onnx_backend_matches_sentence_transformers(onnx_cache: Path) -> None:
    onnx = OnnxSentenceEmbedder(cache_dir=onnx_cache)
    reference = SentenceTransformerEmbedder()
    assert onnx.model_id == reference.model_id and onnx.dimension == reference.dimension
    got = onnx.embed(ONNX_TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(ONNX_TEXTS), 384)
    # Batched with padding, one by one, and on the bulk (multi-thread) session: same numbers.
    np.testing.assert_allclose(got, reference.embed(ONNX_TEXTS), atol=1e-5)
    one_by_one = np.concatenate([onnx.embed([text]) for text in ONNX_TEXTS])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
    many = ONNX_TEXTS * 3  # more than SMALL_BATCH texts: the bulk session
    np.testing.assert_allclose(onnx.embed(many), np.concatenate([got] * 3), atol=1e-5)
    assert onnx.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_onnx_export_is_cached_and_reused(onnx_cache: Path, monkeypatch) -> None:
    first = OnnxSentenceEmbedder(cache_dir=onnx_cache)
    assert first.onnx_path.parent == onnx_cache and first.onnx_path.is_file()
    assert not [path for path in onnx_cache.iterdir() if path.name.endswith(".tmp")]

    def no_export(layout: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(embedding.onnx, "_pooled_encoder", no_export)
    again = OnnxSentenceEmbedder(cache_dir=onnx_cache)
    assert again.onnx_path == first.onnx_path
    np.testing.assert_array_equal(again.embed(ONNX_TEXTS[:2]), first.embed(ONNX_TEXTS[:2]))


@pytest.mark.slow
def test_onnx_threads_share_one_embedder(onnx_cache: Path) -> None:
    onnx = OnnxSentenceEmbedder(cache_dir=onnx_cache)
    expected = [onnx.embed([text]) for text in ONNX_TEXTS]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda text: onnx.embed([text]), ONNX_TEXTS * 4))
    for position, vectors in enumerate(got):
        # Overlapping calls run on the one-thread session, a lone call on the bulk one.
        np.testing.assert_allclose(vectors, expected[position % len(ONNX_TEXTS)], atol=1e-6)
    assert onnx._in_flight == 0


def test_onnx_sessions_do_not_spin(onnx_cache: Path) -> None:
    """The sessions' threads sleep between operators: spinning ones took the cores of the
    service's other compute thread (selections fell to 0.51x beside two writers, 0.77x not
    spinning; bench/soak.py)."""
    onnx = OnnxSentenceEmbedder(cache_dir=onnx_cache, threads=2)
    assert onnx._bulk_session is not onnx._query_session
    for session in (onnx._bulk_session, onnx._query_session):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_refuses_a_corrupt_file_and_auto_falls_back(tmp_path: Path, monkeypatch) -> None:
    layout = embedding.SentenceModelLayout.read(embedding.bundled_model_path())
    digest = embedding.onnx._weights_digest(layout.transformer)[:16]
    (tmp_path / f"all-MiniLM-L6-v2-{digest}.onnx").write_bytes(b"not a model")
    with pytest.raises(EmbeddingModelError, match="could not load"):
        OnnxSentenceEmbedder(cache_dir=tmp_path)
    with pytest.raises(EmbeddingModelError):
        load_sentence_embedder(backend="onnx", cache_dir=tmp_path)

    class Fallback:
        def __init__(self, model_path: object, device: str) -> None:
            self.device = device

    monkeypatch.setattr(embedding.models, "SentenceTransformerEmbedder", Fallback)
    chosen = load_sentence_embedder(backend="auto", cache_dir=tmp_path)
    assert isinstance(chosen, Fallback) and chosen.device == "cpu"


def test_onnx_refuses_layouts_it_does_not_cover(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(
        '[{"path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]'
    )
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        '{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}'
    )
    with pytest.raises(EmbeddingModelError, match="pooling"):
        embedding.SentenceModelLayout.read(tmp_path)
    (tmp_path / "modules.json").write_text('[{"type": "Dense"}]')
    with pytest.raises(EmbeddingModelError, match="modules"):
        embedding.SentenceModelLayout.read(tmp_path)
    (tmp_path / "modules.json").write_text("{not json")
    with pytest.raises(EmbeddingModelError, match="could not read"):
        embedding.SentenceModelLayout.read(tmp_path)


def test_unknown_backend_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="backend"):
        load_sentence_embedder(backend="tensorrt")


def test_hashing_tokens_then_forward_equals_embed() -> None:
    embedder = HashingEmbedder(16)
    texts = ["the cat sat on the mat", "a dog", "", "the cat"]
    tokens = embedder.tokenize(texts)
    assert [len(row) for row in tokens] == [6, 2, 1, 2]
    assert length_order(tokens) == [2, 1, 3, 0]
    np.testing.assert_array_equal(embedder.embed_tokens(tokens), embedder.embed(texts))
    np.testing.assert_array_equal(embed_sorted(embedder, texts, 1), embedder.embed(texts))


def test_pad_tokens_pads_to_the_longest() -> None:
    ids, mask = pad_tokens([np.array([5, 6, 7]), np.array([8])], pad_id=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0]])


@pytest.mark.slow
def test_tokenize_then_forward_equals_embed_for_real_models(onnx_cache: Path) -> None:
    onnx = OnnxSentenceEmbedder(cache_dir=onnx_cache)
    torch_model = SentenceTransformerEmbedder()
    for model in (onnx, torch_model):
        tokens = model.tokenize(ONNX_TEXTS)
        assert [int(row[0]) for row in tokens] == [101] * len(ONNX_TEXTS)  # [CLS] first
        # One padded forward over texts of different lengths, in any order, equals embed.
        reverse = list(reversed(range(len(tokens))))
        got = model.embed_tokens([tokens[row] for row in reverse])[np.argsort(reverse)]
        np.testing.assert_allclose(got, model.embed(ONNX_TEXTS), atol=1e-5)
    np.testing.assert_allclose(
        onnx.embed_tokens(onnx.tokenize(ONNX_TEXTS)),
        torch_model.embed_tokens(torch_model.tokenize(ONNX_TEXTS)),
        atol=1e-5,
    )


def test_the_library_reads_no_environment() -> None:
    root = Path(embedding.__file__).parents[1]
    for source in root.rglob("*.py"):
        text = source.read_text()
        for read in ("os.environ", "os.getenv", "environ.get", "putenv"):
            assert read not in text, f"{source} reads the environment ({read})"
