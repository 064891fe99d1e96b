from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TargetIn")


@_attrs_define
class TargetIn:
    """A target distribution: texts or vectors (optionally weighted), or every example of
    another pool.

        Attributes:
            embeddings (list[list[float]] | None | Unset): The target's vectors (a pool with provided embeddings).
            pool (None | str | Unset):
            texts (list[str] | None | Unset):
            weights (list[float] | None | Unset):
    """

    embeddings: list[list[float]] | None | Unset = UNSET
    pool: None | str | Unset = UNSET
    texts: list[str] | None | Unset = UNSET
    weights: list[float] | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        embeddings: list[list[float]] | None | Unset
        if isinstance(self.embeddings, Unset):
            embeddings = UNSET
        elif isinstance(self.embeddings, list):
            embeddings = []
            for embeddings_type_0_item_data in self.embeddings:
                embeddings_type_0_item = embeddings_type_0_item_data

                embeddings.append(embeddings_type_0_item)

        else:
            embeddings = self.embeddings

        pool: None | str | Unset
        if isinstance(self.pool, Unset):
            pool = UNSET
        else:
            pool = self.pool

        texts: list[str] | None | Unset
        if isinstance(self.texts, Unset):
            texts = UNSET
        elif isinstance(self.texts, list):
            texts = self.texts

        else:
            texts = self.texts

        weights: list[float] | None | Unset
        if isinstance(self.weights, Unset):
            weights = UNSET
        elif isinstance(self.weights, list):
            weights = self.weights

        else:
            weights = self.weights

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if embeddings is not UNSET:
            field_dict["embeddings"] = embeddings
        if pool is not UNSET:
            field_dict["pool"] = pool
        if texts is not UNSET:
            field_dict["texts"] = texts
        if weights is not UNSET:
            field_dict["weights"] = weights

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_embeddings(data: object) -> list[list[float]] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                embeddings_type_0 = []
                _embeddings_type_0 = data
                for embeddings_type_0_item_data in _embeddings_type_0:
                    embeddings_type_0_item = cast(list[float], embeddings_type_0_item_data)

                    embeddings_type_0.append(embeddings_type_0_item)

                return embeddings_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[list[float]] | None | Unset, data)

        embeddings = _parse_embeddings(d.pop("embeddings", UNSET))

        def _parse_pool(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        pool = _parse_pool(d.pop("pool", UNSET))

        def _parse_texts(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                texts_type_0 = cast(list[str], data)

                return texts_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        texts = _parse_texts(d.pop("texts", UNSET))

        def _parse_weights(data: object) -> list[float] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                weights_type_0 = cast(list[float], data)

                return weights_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[float] | None | Unset, data)

        weights = _parse_weights(d.pop("weights", UNSET))

        target_in = cls(
            embeddings=embeddings,
            pool=pool,
            texts=texts,
            weights=weights,
        )

        return target_in
