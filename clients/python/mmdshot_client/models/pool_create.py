from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.pool_create_embedding import PoolCreateEmbedding, check_pool_create_embedding
from ..types import UNSET, Unset

T = TypeVar("T", bound="PoolCreate")


@_attrs_define
class PoolCreate:
    """
    Attributes:
        name (str):
        description (str | Unset):  Default: ''.
        dimension (int | None | Unset): embedding provided: the vectors' dimension (required).
        embedding (PoolCreateEmbedding | Unset): model: the service embeds inputs and queries with the pool's model;
            provided: examples carry their embedding and selections send query vectors. Default: 'model'.
        model (None | str | Unset): embedding model: one of GET /v1/info models (default: the default model).
    """

    name: str
    description: str | Unset = ""
    dimension: int | None | Unset = UNSET
    embedding: PoolCreateEmbedding | Unset = "model"
    model: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        description = self.description

        dimension: int | None | Unset
        if isinstance(self.dimension, Unset):
            dimension = UNSET
        else:
            dimension = self.dimension

        embedding: str | Unset = UNSET
        if not isinstance(self.embedding, Unset):
            embedding = self.embedding

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if dimension is not UNSET:
            field_dict["dimension"] = dimension
        if embedding is not UNSET:
            field_dict["embedding"] = embedding
        if model is not UNSET:
            field_dict["model"] = model

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        description = d.pop("description", UNSET)

        def _parse_dimension(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        dimension = _parse_dimension(d.pop("dimension", UNSET))

        _embedding = d.pop("embedding", UNSET)
        embedding: PoolCreateEmbedding | Unset
        if isinstance(_embedding, Unset):
            embedding = UNSET
        else:
            embedding = check_pool_create_embedding(_embedding)

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        pool_create = cls(
            name=name,
            description=description,
            dimension=dimension,
            embedding=embedding,
            model=model,
        )

        return pool_create
