from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.selected_example_metadata import SelectedExampleMetadata


T = TypeVar("T", bound="SelectedExample")


@_attrs_define
class SelectedExample:
    """
    Attributes:
        id (str): The example's id.
        input_ (str): Its input.
        label (None | str): Its label, if any.
        metadata (SelectedExampleMetadata): Its metadata.
        output (str): Its output.
        selection_rank (int): 0 for the first example the greedy chose.
    """

    id: str
    input_: str
    label: None | str
    metadata: SelectedExampleMetadata
    output: str
    selection_rank: int

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        input_ = self.input_

        label: None | str
        label = self.label

        metadata = self.metadata.to_dict()

        output = self.output

        selection_rank = self.selection_rank

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "input": input_,
                "label": label,
                "metadata": metadata,
                "output": output,
                "selection_rank": selection_rank,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.selected_example_metadata import SelectedExampleMetadata  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        input_ = d.pop("input")

        def _parse_label(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        label = _parse_label(d.pop("label"))

        metadata = SelectedExampleMetadata.from_dict(d.pop("metadata"))

        output = d.pop("output")

        selection_rank = d.pop("selection_rank")

        selected_example = cls(
            id=id,
            input_=input_,
            label=label,
            metadata=metadata,
            output=output,
            selection_rank=selection_rank,
        )

        return selected_example
