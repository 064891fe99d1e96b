from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.metadata import Metadata


T = TypeVar("T", bound="Example")


@_attrs_define
class Example:
    """A stored demonstration.

    Attributes:
        id (str): Its id.
        input_ (str): The demonstration's input.
        token_count (int): Tokens of input and output (the pool's tokenizer, without special tokens).
        label (None | str | Unset): Its class, if any.
        metadata (Metadata | Unset):
        output (str | Unset): The answer it demonstrates. Default: ''.
    """

    id: str
    input_: str
    token_count: int
    label: None | str | Unset = UNSET
    metadata: Metadata | Unset = UNSET
    output: str | Unset = ""

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        input_ = self.input_

        token_count = self.token_count

        label: None | str | Unset
        if isinstance(self.label, Unset):
            label = UNSET
        else:
            label = self.label

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        output = self.output

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "input": input_,
                "token_count": token_count,
            }
        )
        if label is not UNSET:
            field_dict["label"] = label
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if output is not UNSET:
            field_dict["output"] = output

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.metadata import Metadata  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        input_ = d.pop("input")

        token_count = d.pop("token_count")

        def _parse_label(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        label = _parse_label(d.pop("label", UNSET))

        _metadata = d.pop("metadata", UNSET)
        metadata: Metadata | Unset
        if isinstance(_metadata, Unset):
            metadata = UNSET
        else:
            metadata = Metadata.from_dict(_metadata)

        output = d.pop("output", UNSET)

        example = cls(
            id=id,
            input_=input_,
            token_count=token_count,
            label=label,
            metadata=metadata,
            output=output,
        )

        return example
