from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="BaselineScore")


@_attrs_define
class BaselineScore:
    """How close a baseline's subset of the same size comes to the target.

    Attributes:
        mmd (float): Its MMD to the target: compare with the selection's mmd.
        mmd2 (float): Its squared MMD: compare with the selection's mmd2.
    """

    mmd: float
    mmd2: float

    def to_dict(self) -> dict[str, Any]:
        mmd = self.mmd

        mmd2 = self.mmd2

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "mmd": mmd,
                "mmd2": mmd2,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        mmd = d.pop("mmd")

        mmd2 = d.pop("mmd2")

        baseline_score = cls(
            mmd=mmd,
            mmd2=mmd2,
        )

        return baseline_score
