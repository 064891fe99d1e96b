from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.selection import Selection


T = TypeVar("T", bound="BatchSelection")


@_attrs_define
class BatchSelection:
    """
    Attributes:
        pool (str): The pool selected from.
        pool_version (int): Its version when selected.
        results (list[Selection]): One selection per query, in request order.
    """

    pool: str
    pool_version: int
    results: list[Selection]

    def to_dict(self) -> dict[str, Any]:
        pool = self.pool

        pool_version = self.pool_version

        results = []
        for results_item_data in self.results:
            results_item = results_item_data.to_dict()
            results.append(results_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "pool": pool,
                "pool_version": pool_version,
                "results": results,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.selection import Selection  # noqa: PLC0415

        d = dict(src_dict)
        pool = d.pop("pool")

        pool_version = d.pop("pool_version")

        results = []
        _results = d.pop("results")
        for results_item_data in _results:
            results_item = Selection.from_dict(results_item_data)

            results.append(results_item)

        batch_selection = cls(
            pool=pool,
            pool_version=pool_version,
            results=results,
        )

        return batch_selection
