from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="TauScore")


@_attrs_define
class TauScore:
    """
    Attributes:
        score (float): Its score on the held-out examples (0 to 1; higher is better).
        tau (float): A candidate bandwidth.
    """

    score: float
    tau: float

    def to_dict(self) -> dict[str, Any]:
        score = self.score

        tau = self.tau

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "score": score,
                "tau": tau,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        score = d.pop("score")

        tau = d.pop("tau")

        tau_score = cls(
            score=score,
            tau=tau,
        )

        return tau_score
