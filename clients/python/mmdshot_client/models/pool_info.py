from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="PoolInfo")


@_attrs_define
class PoolInfo:
    """A pool: its size, version (bumped by every change) and the model that embedded it.

    Attributes:
        created_at (float):
        description (str):
        dimension (int):
        labelled (bool): Every example has a label: selection uses the joint kernel.
        model (str):
        name (str):
        size (int):
        updated_at (float):
        version (int):
    """

    created_at: float
    description: str
    dimension: int
    labelled: bool
    model: str
    name: str
    size: int
    updated_at: float
    version: int

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        description = self.description

        dimension = self.dimension

        labelled = self.labelled

        model = self.model

        name = self.name

        size = self.size

        updated_at = self.updated_at

        version = self.version

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "created_at": created_at,
                "description": description,
                "dimension": dimension,
                "labelled": labelled,
                "model": model,
                "name": name,
                "size": size,
                "updated_at": updated_at,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        description = d.pop("description")

        dimension = d.pop("dimension")

        labelled = d.pop("labelled")

        model = d.pop("model")

        name = d.pop("name")

        size = d.pop("size")

        updated_at = d.pop("updated_at")

        version = d.pop("version")

        pool_info = cls(
            created_at=created_at,
            description=description,
            dimension=dimension,
            labelled=labelled,
            model=model,
            name=name,
            size=size,
            updated_at=updated_at,
            version=version,
        )

        return pool_info
