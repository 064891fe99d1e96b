from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.target_in import TargetIn


T = TypeVar("T", bound="PrefixRebuild")


@_attrs_define
class PrefixRebuild:
    """What a rebuild changes; empty: the same target and options at the pool's current
    version.

        Attributes:
            target (Literal['traffic'] | None | TargetIn | Unset): A new target (texts, a pool, or "traffic"); null: the
                last one.
    """

    target: Literal["traffic"] | None | TargetIn | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.target_in import TargetIn  # noqa: PLC0415

        target: dict[str, Any] | Literal["traffic"] | None | Unset
        if isinstance(self.target, Unset):
            target = UNSET
        elif isinstance(self.target, TargetIn):
            target = self.target.to_dict()
        else:
            target = self.target

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if target is not UNSET:
            field_dict["target"] = target

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.target_in import TargetIn  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_target(data: object) -> Literal["traffic"] | None | TargetIn | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                target_type_0 = TargetIn.from_dict(data)

                return target_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            target_type_1 = cast(Literal["traffic"], data)
            if target_type_1 != "traffic":
                raise ValueError(f"target_type_1 must match const 'traffic', got '{target_type_1}'")
            return target_type_1
            return cast(Literal["traffic"] | None | TargetIn | Unset, data)

        target = _parse_target(d.pop("target", UNSET))

        prefix_rebuild = cls(
            target=target,
        )

        return prefix_rebuild
