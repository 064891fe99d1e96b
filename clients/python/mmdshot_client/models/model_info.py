from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="ModelInfo")


@_attrs_define
class ModelInfo:
    """A model a pool may name at creation (POST /v1/pools ``model``).

    Attributes:
        aliases (list[str]): Other names it answers to (minilm).
        default (bool): The model of a pool created without one.
        dimension (int | None): Its embeddings' dimension; null for a remote server not yet asked.
        loaded (bool): Loaded in this replica (local models load on first use).
        name (str): What a pool names it by.
    """

    aliases: list[str]
    default: bool
    dimension: int | None
    loaded: bool
    name: str

    def to_dict(self) -> dict[str, Any]:
        aliases = self.aliases

        default = self.default

        dimension: int | None
        dimension = self.dimension

        loaded = self.loaded

        name = self.name

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "aliases": aliases,
                "default": default,
                "dimension": dimension,
                "loaded": loaded,
                "name": name,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        aliases = cast(list[str], d.pop("aliases"))

        default = d.pop("default")

        def _parse_dimension(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        dimension = _parse_dimension(d.pop("dimension"))

        loaded = d.pop("loaded")

        name = d.pop("name")

        model_info = cls(
            aliases=aliases,
            default=default,
            dimension=dimension,
            loaded=loaded,
            name=name,
        )

        return model_info
