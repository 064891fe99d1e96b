from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.example_in import ExampleIn


T = TypeVar("T", bound="ExamplesUpsert")


@_attrs_define
class ExamplesUpsert:
    """
    Attributes:
        examples (list[ExampleIn]):
    """

    examples: list[ExampleIn]

    def to_dict(self) -> dict[str, Any]:
        examples = []
        for examples_item_data in self.examples:
            examples_item = examples_item_data.to_dict()
            examples.append(examples_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "examples": examples,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.example_in import ExampleIn  # noqa: PLC0415

        d = dict(src_dict)
        examples = []
        _examples = d.pop("examples")
        for examples_item_data in _examples:
            examples_item = ExampleIn.from_dict(examples_item_data)

            examples.append(examples_item)

        examples_upsert = cls(
            examples=examples,
        )

        return examples_upsert
