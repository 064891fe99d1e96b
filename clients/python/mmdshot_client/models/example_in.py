from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.metadata import Metadata


T = TypeVar("T", bound="ExampleIn")


@_attrs_define
class ExampleIn:
    """One demonstration. Without an ``id`` one is derived from its content.

    Attributes:
        input_ (str): The demonstration's input.
        embedding (list[float] | None | Unset): Its input's embedding: required in a pool created with embedding
            provided (or for every inline candidate, to select on vectors), refused otherwise.
        id (None | str | Unset): Its id; default: 16 hex digits of its content's hash.
        label (None | str | Unset): Its class, if any.
        metadata (Metadata | Unset):
        output (str | Unset): The answer it demonstrates. Default: ''.
    """

    input_: str
    embedding: list[float] | None | Unset = UNSET
    id: None | str | Unset = UNSET
    label: None | str | Unset = UNSET
    metadata: Metadata | Unset = UNSET
    output: str | Unset = ""

    def to_dict(self) -> dict[str, Any]:
        input_ = self.input_

        embedding: list[float] | None | Unset
        if isinstance(self.embedding, Unset):
            embedding = UNSET
        elif isinstance(self.embedding, list):
            embedding = self.embedding

        else:
            embedding = self.embedding

        id: None | str | Unset
        if isinstance(self.id, Unset):
            id = UNSET
        else:
            id = self.id

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
                "input": input_,
            }
        )
        if embedding is not UNSET:
            field_dict["embedding"] = embedding
        if id is not UNSET:
            field_dict["id"] = id
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
        input_ = d.pop("input")

        def _parse_embedding(data: object) -> list[float] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                embedding_type_0 = cast(list[float], data)

                return embedding_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[float] | None | Unset, data)

        embedding = _parse_embedding(d.pop("embedding", UNSET))

        def _parse_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        id = _parse_id(d.pop("id", UNSET))

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

        example_in = cls(
            input_=input_,
            embedding=embedding,
            id=id,
            label=label,
            metadata=metadata,
            output=output,
        )

        return example_in
