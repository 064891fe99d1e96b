from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.duplicate import Duplicate


T = TypeVar("T", bound="UpsertResult")


@_attrs_define
class UpsertResult:
    """
    Attributes:
        duplicates (list[Duplicate]): Examples not stored: content already held.
        inserted (list[str]): Ids of the new examples.
        pool (str): The pool's name.
        updated (list[str]): Ids whose content was replaced.
        version (int): The pool's version after the call.
    """

    duplicates: list[Duplicate]
    inserted: list[str]
    pool: str
    updated: list[str]
    version: int

    def to_dict(self) -> dict[str, Any]:
        duplicates = []
        for duplicates_item_data in self.duplicates:
            duplicates_item = duplicates_item_data.to_dict()
            duplicates.append(duplicates_item)

        inserted = self.inserted

        pool = self.pool

        updated = self.updated

        version = self.version

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "duplicates": duplicates,
                "inserted": inserted,
                "pool": pool,
                "updated": updated,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.duplicate import Duplicate  # noqa: PLC0415

        d = dict(src_dict)
        duplicates = []
        _duplicates = d.pop("duplicates")
        for duplicates_item_data in _duplicates:
            duplicates_item = Duplicate.from_dict(duplicates_item_data)

            duplicates.append(duplicates_item)

        inserted = cast(list[str], d.pop("inserted"))

        pool = d.pop("pool")

        updated = cast(list[str], d.pop("updated"))

        version = d.pop("version")

        upsert_result = cls(
            duplicates=duplicates,
            inserted=inserted,
            pool=pool,
            updated=updated,
            version=version,
        )

        return upsert_result
