from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.example import Example


T = TypeVar("T", bound="ExamplePage")


@_attrs_define
class ExamplePage:
    """
    Attributes:
        examples (list[Example]): In insertion order.
        next_cursor (None | str): Pass as ?cursor= for the next page; null at the end.
    """

    examples: list[Example]
    next_cursor: None | str

    def to_dict(self) -> dict[str, Any]:
        examples = []
        for examples_item_data in self.examples:
            examples_item = examples_item_data.to_dict()
            examples.append(examples_item)

        next_cursor: None | str
        next_cursor = self.next_cursor

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "examples": examples,
                "next_cursor": next_cursor,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.example import Example  # noqa: PLC0415

        d = dict(src_dict)
        examples = []
        _examples = d.pop("examples")
        for examples_item_data in _examples:
            examples_item = Example.from_dict(examples_item_data)

            examples.append(examples_item)

        def _parse_next_cursor(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        next_cursor = _parse_next_cursor(d.pop("next_cursor"))

        example_page = cls(
            examples=examples,
            next_cursor=next_cursor,
        )

        return example_page
