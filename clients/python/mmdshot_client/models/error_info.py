from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ErrorInfo")


@_attrs_define
class ErrorInfo:
    """
    Attributes:
        message (str): What went wrong, for a person.
        type_ (str): Machine-readable kind (docs/api.md lists them).
        detail (Any | Unset): Structured context: the invalid fields, the names, ...
    """

    message: str
    type_: str
    detail: Any | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        message = self.message

        type_ = self.type_

        detail = self.detail

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "message": message,
                "type": type_,
            }
        )
        if detail is not UNSET:
            field_dict["detail"] = detail

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        message = d.pop("message")

        type_ = d.pop("type")

        detail = d.pop("detail", UNSET)

        error_info = cls(
            message=message,
            type_=type_,
            detail=detail,
        )

        return error_info
