from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="CalibrateRequest")


@_attrs_define
class CalibrateRequest:
    """What to calibrate: the candidate bandwidths, the k to select, the validation split.

    Attributes:
        k (int | Unset): Demonstrations per held-out example. Default: 8.
        seed (int | Unset): Draws the validation split. Default: 0.
        taus (list[float] | Unset):
        validation_size (int | Unset): Examples held out as queries; at most the pool size minus k. Default: 300.
    """

    k: int | Unset = 8
    seed: int | Unset = 0
    taus: list[float] | Unset = UNSET
    validation_size: int | Unset = 300

    def to_dict(self) -> dict[str, Any]:
        k = self.k

        seed = self.seed

        taus: list[float] | Unset = UNSET
        if not isinstance(self.taus, Unset):
            taus = self.taus

        validation_size = self.validation_size

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if k is not UNSET:
            field_dict["k"] = k
        if seed is not UNSET:
            field_dict["seed"] = seed
        if taus is not UNSET:
            field_dict["taus"] = taus
        if validation_size is not UNSET:
            field_dict["validation_size"] = validation_size

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        k = d.pop("k", UNSET)

        seed = d.pop("seed", UNSET)

        taus = cast(list[float], d.pop("taus", UNSET))

        validation_size = d.pop("validation_size", UNSET)

        calibrate_request = cls(
            k=k,
            seed=seed,
            taus=taus,
            validation_size=validation_size,
        )

        return calibrate_request
