from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TargetIn")


@_attrs_define
class TargetIn:
    """A target distribution: texts (optionally weighted) or every example of another pool.

    Attributes:
        pool (None | str | Unset):
        texts (list[str] | None | Unset):
        weights (list[float] | None | Unset):
    """

    pool: None | str | Unset = UNSET
    texts: list[str] | None | Unset = UNSET
    weights: list[float] | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
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
            pool=pool,
            texts=texts,
            weights=weights,
        )

        return target_in
