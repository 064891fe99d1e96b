from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.prefix_info import PrefixInfo


T = TypeVar("T", bound="PrefixList")


@_attrs_define
class PrefixList:
    """
    Attributes:
        prefixes (list[PrefixInfo]): The pool's prefixes, by name.
    """

    prefixes: list[PrefixInfo]

    def to_dict(self) -> dict[str, Any]:
        prefixes = []
        for prefixes_item_data in self.prefixes:
            prefixes_item = prefixes_item_data.to_dict()
            prefixes.append(prefixes_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "prefixes": prefixes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.prefix_info import PrefixInfo  # noqa: PLC0415

        d = dict(src_dict)
        prefixes = []
        _prefixes = d.pop("prefixes")
        for prefixes_item_data in _prefixes:
            prefixes_item = PrefixInfo.from_dict(prefixes_item_data)

            prefixes.append(prefixes_item)

        prefix_list = cls(
            prefixes=prefixes,
        )

        return prefix_list
