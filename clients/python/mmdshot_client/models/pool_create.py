from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PoolCreate")


@_attrs_define
class PoolCreate:
    """
    Attributes:
        name (str):
        description (str | Unset):  Default: ''.
        tokenizer (str | Unset): The tokenizer the pool counts its examples' tokens with (token_count,
            constraints.token_budget): one of /v1/info's tokenizers (MMDSHOT_TOKENIZERS); default: the embedding model's.
            Default: 'default'.
    """

    name: str
    description: str | Unset = ""
    tokenizer: str | Unset = "default"

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        description = self.description

        tokenizer = self.tokenizer

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if tokenizer is not UNSET:
            field_dict["tokenizer"] = tokenizer

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        description = d.pop("description", UNSET)

        tokenizer = d.pop("tokenizer", UNSET)

        pool_create = cls(
            name=name,
            description=description,
            tokenizer=tokenizer,
        )

        return pool_create
