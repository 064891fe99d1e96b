"""Token counting for token budgets, apart from any embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from selector.embedding.models import bundled_model_path
from selector.errors import EmbeddingModelError


class TokenCounter(Protocol):
    """Counts the tokens of texts (for token budgets)."""

    def count(self, texts: Sequence[str]) -> list[int]:
        """``texts: n strings -> n`` token counts."""
        ...


class HFTokenCounter:
    """Counts tokens with a Hugging Face ``tokenizer.json`` (by default the bundled MiniLM's),
    without special tokens."""

    def __init__(self, tokenizer_file: str | Path | None = None) -> None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_file) if tokenizer_file else bundled_model_path() / "tokenizer.json"
        if not path.is_file():
            raise EmbeddingModelError(f"no tokenizer file at {path}")
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


class WhitespaceTokenCounter:
    """A cheap stand-in counter: the number of whitespace-separated words."""

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]
