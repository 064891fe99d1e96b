from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="PrefixExample")


@_attrs_define
class PrefixExample:
    """An example of a prefix, its texts as they were when the prefix was built.

    Attributes:
        id (str): Its id.
        input_ (str): Its input.
        label (None | str): Its label, if any.
        output (str): Its output.
    """

    id: str
    input_: str
    label: None | str
    output: str

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        input_ = self.input_

        label: None | str
        label = self.label

        output = self.output

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "input": input_,
                "label": label,
                "output": output,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        input_ = d.pop("input")

        def _parse_label(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        label = _parse_label(d.pop("label"))

        output = d.pop("output")

        prefix_example = cls(
            id=id,
            input_=input_,
            label=label,
            output=output,
        )

        return prefix_example
