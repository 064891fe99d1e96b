from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="PrefixBrief")


@_attrs_define
class PrefixBrief:
    """A prefix as its pool lists it (GET /v1/pools/{pool}/prefixes/{name} has the rest).

    Attributes:
        k (int): Its examples.
        name (str): The prefix's name.
        prefix_hash (str): sha256 (hex) of its rendered text block.
        stale (bool): One of its examples changed or was deleted since it was built: rebuild it.
    """

    k: int
    name: str
    prefix_hash: str
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        k = self.k

        name = self.name

        prefix_hash = self.prefix_hash

        stale = self.stale

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "k": k,
                "name": name,
                "prefix_hash": prefix_hash,
                "stale": stale,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        k = d.pop("k")

        name = d.pop("name")

        prefix_hash = d.pop("prefix_hash")

        stale = d.pop("stale")

        prefix_brief = cls(
            k=k,
            name=name,
            prefix_hash=prefix_hash,
            stale=stale,
        )

        return prefix_brief
