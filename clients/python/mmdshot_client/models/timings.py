from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Timings")


@_attrs_define
class Timings:
    """Milliseconds: loading the pool (0 when it was ready), embedding the target,
    scanning/prefiltering the pool, greedy, refinement; the total includes the load.

        Attributes:
            embed_ms (float): Embedding the query or target texts (ms).
            load_ms (float): Loading the pool into memory, when this request had to (ms); 0 when it was loaded.
            refine_ms (float): Swap refinement (ms).
            scan_ms (float): Scoring the pool against the target, or its prefilter (ms).
            select_ms (float): The greedy (or baseline) choice (ms).
            total_ms (float): The whole request inside the service (ms).
    """

    embed_ms: float
    load_ms: float
    refine_ms: float
    scan_ms: float
    select_ms: float
    total_ms: float

    def to_dict(self) -> dict[str, Any]:
        embed_ms = self.embed_ms

        load_ms = self.load_ms

        refine_ms = self.refine_ms

        scan_ms = self.scan_ms

        select_ms = self.select_ms

        total_ms = self.total_ms

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "embed_ms": embed_ms,
                "load_ms": load_ms,
                "refine_ms": refine_ms,
                "scan_ms": scan_ms,
                "select_ms": select_ms,
                "total_ms": total_ms,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        embed_ms = d.pop("embed_ms")

        load_ms = d.pop("load_ms")

        refine_ms = d.pop("refine_ms")

        scan_ms = d.pop("scan_ms")

        select_ms = d.pop("select_ms")

        total_ms = d.pop("total_ms")

        timings = cls(
            embed_ms=embed_ms,
            load_ms=load_ms,
            refine_ms=refine_ms,
            scan_ms=scan_ms,
            select_ms=select_ms,
            total_ms=total_ms,
        )

        return timings
