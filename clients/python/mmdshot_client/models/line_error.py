from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="LineError")


@_attrs_define
class LineError:
    """
    Attributes:
        line (int): 1-based line (JSONL) or element (JSON array) number.
        message (str): Why the record was refused.
    """

    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        line = self.line

        message = self.message

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "line": line,
                "message": message,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        line = d.pop("line")

        message = d.pop("message")

        line_error = cls(
            line=line,
            message=message,
        )

        return line_error
