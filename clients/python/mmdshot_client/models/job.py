from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.job_status import JobStatus, check_job_status
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.line_error import LineError


T = TypeVar("T", bound="Job")


@_attrs_define
class Job:
    """A background import: ``done`` of ``total`` records are committed or rejected.

    Attributes:
        created_at (float):
        done (int):
        duplicates (int):
        errors (list[LineError]):
        id (str):
        inserted (int):
        pool (str):
        status (JobStatus):
        total (int):
        updated (int):
        updated_at (float):
        message (None | str | Unset):
    """

    created_at: float
    done: int
    duplicates: int
    errors: list[LineError]
    id: str
    inserted: int
    pool: str
    status: JobStatus
    total: int
    updated: int
    updated_at: float
    message: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        done = self.done

        duplicates = self.duplicates

        errors = []
        for errors_item_data in self.errors:
            errors_item = errors_item_data.to_dict()
            errors.append(errors_item)

        id = self.id

        inserted = self.inserted

        pool = self.pool

        status: str = self.status

        total = self.total

        updated = self.updated

        updated_at = self.updated_at

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "created_at": created_at,
                "done": done,
                "duplicates": duplicates,
                "errors": errors,
                "id": id,
                "inserted": inserted,
                "pool": pool,
                "status": status,
                "total": total,
                "updated": updated,
                "updated_at": updated_at,
            }
        )
        if message is not UNSET:
            field_dict["message"] = message

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.line_error import LineError  # noqa: PLC0415

        d = dict(src_dict)
        created_at = d.pop("created_at")

        done = d.pop("done")

        duplicates = d.pop("duplicates")

        errors = []
        _errors = d.pop("errors")
        for errors_item_data in _errors:
            errors_item = LineError.from_dict(errors_item_data)

            errors.append(errors_item)

        id = d.pop("id")

        inserted = d.pop("inserted")

        pool = d.pop("pool")

        status = check_job_status(d.pop("status"))

        total = d.pop("total")

        updated = d.pop("updated")

        updated_at = d.pop("updated_at")

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        job = cls(
            created_at=created_at,
            done=done,
            duplicates=duplicates,
            errors=errors,
            id=id,
            inserted=inserted,
            pool=pool,
            status=status,
            total=total,
            updated=updated,
            updated_at=updated_at,
            message=message,
        )

        return job
