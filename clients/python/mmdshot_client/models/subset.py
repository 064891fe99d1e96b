from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="Subset")


@_attrs_define
class Subset:
    """A ranked subset: squared MMD to the target and the paper's bounds.

    Attributes:
        bias_bound (float): C * mmd (C: bias_constant).
        bound (float): C * mmd + R / sqrt(k) (R: complexity_constant).
        ids (list[str]): The subset's example ids, in selection order.
        mmd (float): MMD to the target: sqrt(mmd2); lower is closer.
        mmd2 (float): Squared MMD to the target (kernel units, >= 0).
    """

    bias_bound: float
    bound: float
    ids: list[str]
    mmd: float
    mmd2: float

    def to_dict(self) -> dict[str, Any]:
        bias_bound = self.bias_bound

        bound = self.bound

        ids = self.ids

        mmd = self.mmd

        mmd2 = self.mmd2

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "bias_bound": bias_bound,
                "bound": bound,
                "ids": ids,
                "mmd": mmd,
                "mmd2": mmd2,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        bias_bound = d.pop("bias_bound")

        bound = d.pop("bound")

        ids = cast(list[str], d.pop("ids"))

        mmd = d.pop("mmd")

        mmd2 = d.pop("mmd2")

        subset = cls(
            bias_bound=bias_bound,
            bound=bound,
            ids=ids,
            mmd=mmd,
            mmd2=mmd2,
        )

        return subset
