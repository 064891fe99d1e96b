from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.job_kind import JobKind, check_job_kind
from ..models.job_status import JobStatus, check_job_status
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.calibration import Calibration
    from ..models.line_error import LineError


T = TypeVar("T", bound="Job")


@_attrs_define
class Job:
    """A background job, kept in the store: any replica may run it, and a job whose replica
    stopped resumes after its last committed chunk. An import: ``done`` of ``total`` records
    are committed (beside the pool, moved into it at the end in one version) or rejected
    (``total`` is 0 until the job has counted them). A calibration:
    ``done`` of ``total`` settings (each tau, and knn) are scored, and ``calibration`` holds
    the result once it succeeded.

        Attributes:
            created_at (float): Seconds since the epoch.
            created_at_iso (str): created_at as an ISO-8601 UTC timestamp.
            done (int): Of total, processed so far.
            duplicates (int): Import: records whose content the pool held (0 until it succeeded).
            errors (list[LineError]): Import: the records refused.
            id (str): The job's id (GET /v1/jobs/{id}).
            inserted (int): Import: new examples stored (0 until it succeeded).
            kind (JobKind): What it does.
            pool (str): The pool it works on.
            status (JobStatus): queued and running are not final; cancelled: POST /v1/jobs/{id}/cancel.
            total (int): Records (import; 0 until the job has counted them) or settings (calibration) to process.
            updated (int): Import: examples whose content was replaced (0 until it succeeded).
            updated_at (float): Seconds since the epoch: the last change.
            updated_at_iso (str): updated_at as an ISO-8601 UTC timestamp.
            calibration (Calibration | None | Unset): Calibration: the result, once it succeeded.
            message (None | str | Unset): Why it failed, when it did.
            resumable (bool | Unset): A failed job that POST /v1/jobs/{job_id}/resume continues (it failed for want of
                storage space). Default: False.
    """

    created_at: float
    created_at_iso: str
    done: int
    duplicates: int
    errors: list[LineError]
    id: str
    inserted: int
    kind: JobKind
    pool: str
    status: JobStatus
    total: int
    updated: int
    updated_at: float
    updated_at_iso: str
    calibration: Calibration | None | Unset = UNSET
    message: None | str | Unset = UNSET
    resumable: bool | Unset = False

    def to_dict(self) -> dict[str, Any]:
        from ..models.calibration import Calibration  # noqa: PLC0415

        created_at = self.created_at

        created_at_iso = self.created_at_iso

        done = self.done

        duplicates = self.duplicates

        errors = []
        for errors_item_data in self.errors:
            errors_item = errors_item_data.to_dict()
            errors.append(errors_item)

        id = self.id

        inserted = self.inserted

        kind: str = self.kind

        pool = self.pool

        status: str = self.status

        total = self.total

        updated = self.updated

        updated_at = self.updated_at

        updated_at_iso = self.updated_at_iso

        calibration: dict[str, Any] | None | Unset
        if isinstance(self.calibration, Unset):
            calibration = UNSET
        elif isinstance(self.calibration, Calibration):
            calibration = self.calibration.to_dict()
        else:
            calibration = self.calibration

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        resumable = self.resumable

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "created_at": created_at,
                "created_at_iso": created_at_iso,
                "done": done,
                "duplicates": duplicates,
                "errors": errors,
                "id": id,
                "inserted": inserted,
                "kind": kind,
                "pool": pool,
                "status": status,
                "total": total,
                "updated": updated,
                "updated_at": updated_at,
                "updated_at_iso": updated_at_iso,
            }
        )
        if calibration is not UNSET:
            field_dict["calibration"] = calibration
        if message is not UNSET:
            field_dict["message"] = message
        if resumable is not UNSET:
            field_dict["resumable"] = resumable

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.calibration import Calibration  # noqa: PLC0415
        from ..models.line_error import LineError  # noqa: PLC0415

        d = dict(src_dict)
        created_at = d.pop("created_at")

        created_at_iso = d.pop("created_at_iso")

        done = d.pop("done")

        duplicates = d.pop("duplicates")

        errors = []
        _errors = d.pop("errors")
        for errors_item_data in _errors:
            errors_item = LineError.from_dict(errors_item_data)

            errors.append(errors_item)

        id = d.pop("id")

        inserted = d.pop("inserted")

        kind = check_job_kind(d.pop("kind"))

        pool = d.pop("pool")

        status = check_job_status(d.pop("status"))

        total = d.pop("total")

        updated = d.pop("updated")

        updated_at = d.pop("updated_at")

        updated_at_iso = d.pop("updated_at_iso")

        def _parse_calibration(data: object) -> Calibration | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                calibration_type_0 = Calibration.from_dict(data)

                return calibration_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Calibration | None | Unset, data)

        calibration = _parse_calibration(d.pop("calibration", UNSET))

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        resumable = d.pop("resumable", UNSET)

        job = cls(
            created_at=created_at,
            created_at_iso=created_at_iso,
            done=done,
            duplicates=duplicates,
            errors=errors,
            id=id,
            inserted=inserted,
            kind=kind,
            pool=pool,
            status=status,
            total=total,
            updated=updated,
            updated_at=updated_at,
            updated_at_iso=updated_at_iso,
            calibration=calibration,
            message=message,
            resumable=resumable,
        )

        return job
