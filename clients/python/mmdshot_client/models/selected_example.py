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
        affinity (float | None): Its target affinity t_i, the term the selection weighs: the similarity times the
            target's estimated probability of its label under the joint kernel, the similarity otherwise (kernel units).
            Null when the service cannot redo the joint kernel's estimate (a prefiltered selection for a target of several
            points).
        contribution (float | None): How much mmd2 would rise without it: MMD^2(chosen minus it) - mmd2 (kernel units;
            negative when the set is closer to the target without it). Null when affinity is.
        id (str): The example's id.
        input_ (str): Its input.
        label (None | str): Its label, if any.
        metadata (SelectedExampleMetadata): Its metadata.
        output (str): Its output.
        selection_rank (int): 0 for the first example the greedy chose.
        similarity (float): Its input kernel value with the target, sum_j w_j k(x_i, y_j) under the selection's kernel
            and tau (one query: k(x_i, q); kernel units, higher is closer; the cosine itself under kernel cosine).
    """

    affinity: float | None
    contribution: float | None
    id: str
    input_: str
    label: None | str
    metadata: SelectedExampleMetadata
    output: str
    selection_rank: int
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        affinity: float | None
        affinity = self.affinity

        contribution: float | None
        contribution = self.contribution

        id = self.id

        input_ = self.input_

        label: None | str
        label = self.label

        metadata = self.metadata.to_dict()

        output = self.output

        selection_rank = self.selection_rank

        similarity = self.similarity

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "affinity": affinity,
                "contribution": contribution,
                "id": id,
                "input": input_,
                "label": label,
                "metadata": metadata,
                "output": output,
                "selection_rank": selection_rank,
                "similarity": similarity,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.selected_example_metadata import SelectedExampleMetadata  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_affinity(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        affinity = _parse_affinity(d.pop("affinity"))

        def _parse_contribution(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        contribution = _parse_contribution(d.pop("contribution"))

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

        similarity = d.pop("similarity")

        selected_example = cls(
            affinity=affinity,
            contribution=contribution,
            id=id,
            input_=input_,
            label=label,
            metadata=metadata,
            output=output,
            selection_rank=selection_rank,
            similarity=similarity,
        )

        return selected_example
