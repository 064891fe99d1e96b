from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Duplicate")


@_attrs_define
class Duplicate:
    """An example of the request not stored because the pool holds the same content.

    Attributes:
        existing_id (str): The id of the stored example with that content.
        position (int): Index of the example in the request (or line number).
    """

    existing_id: str
    position: int

    def to_dict(self) -> dict[str, Any]:
        existing_id = self.existing_id

        position = self.position

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "existing_id": existing_id,
                "position": position,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        existing_id = d.pop("existing_id")

        position = d.pop("position")

        duplicate = cls(
            existing_id=existing_id,
            position=position,
        )

        return duplicate
