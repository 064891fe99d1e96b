from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.pool_calibration import PoolCalibration
    from ..models.prefix_brief import PrefixBrief


T = TypeVar("T", bound="PoolInfo")


@_attrs_define
class PoolInfo:
    """A pool: its size, version (bumped by every change) and the model that embedded it.

    Attributes:
        created_at (float): Seconds since the epoch.
        created_at_iso (str): created_at as an ISO-8601 UTC timestamp.
        description (str): Free text given at creation.
        dimension (int): The embeddings' dimension.
        labelled (bool): Every example has a label: selection uses the joint kernel.
        model (str): The embedding model.
        name (str): The pool's name.
        size (int): Examples stored.
        tokenizer (str): The tokenizer of its token counts and budgets.
        updated_at (float): Seconds since the epoch: the last change.
        updated_at_iso (str): updated_at as an ISO-8601 UTC timestamp.
        version (int): Bumped by one by every call that changes the pool.
        calibration (None | PoolCalibration | Unset): The last calibration (POST /v1/pools/{pool}/calibrate).
        prefixes (list[PrefixBrief] | Unset): Its prefixes (POST /v1/pools/{pool}/prefixes), by name.
    """

    created_at: float
    created_at_iso: str
    description: str
    dimension: int
    labelled: bool
    model: str
    name: str
    size: int
    tokenizer: str
    updated_at: float
    updated_at_iso: str
    version: int
    calibration: None | PoolCalibration | Unset = UNSET
    prefixes: list[PrefixBrief] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.pool_calibration import PoolCalibration  # noqa: PLC0415

        created_at = self.created_at

        created_at_iso = self.created_at_iso

        description = self.description

        dimension = self.dimension

        labelled = self.labelled

        model = self.model

        name = self.name

        size = self.size

        tokenizer = self.tokenizer

        updated_at = self.updated_at

        updated_at_iso = self.updated_at_iso

        version = self.version

        calibration: dict[str, Any] | None | Unset
        if isinstance(self.calibration, Unset):
            calibration = UNSET
        elif isinstance(self.calibration, PoolCalibration):
            calibration = self.calibration.to_dict()
        else:
            calibration = self.calibration

        prefixes: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.prefixes, Unset):
            prefixes = []
            for prefixes_item_data in self.prefixes:
                prefixes_item = prefixes_item_data.to_dict()
                prefixes.append(prefixes_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "created_at": created_at,
                "created_at_iso": created_at_iso,
                "description": description,
                "dimension": dimension,
                "labelled": labelled,
                "model": model,
                "name": name,
                "size": size,
                "tokenizer": tokenizer,
                "updated_at": updated_at,
                "updated_at_iso": updated_at_iso,
                "version": version,
            }
        )
        if calibration is not UNSET:
            field_dict["calibration"] = calibration
        if prefixes is not UNSET:
            field_dict["prefixes"] = prefixes

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.pool_calibration import PoolCalibration  # noqa: PLC0415
        from ..models.prefix_brief import PrefixBrief  # noqa: PLC0415

        d = dict(src_dict)
        created_at = d.pop("created_at")

        created_at_iso = d.pop("created_at_iso")

        description = d.pop("description")

        dimension = d.pop("dimension")

        labelled = d.pop("labelled")

        model = d.pop("model")

        name = d.pop("name")

        size = d.pop("size")

        tokenizer = d.pop("tokenizer")

        updated_at = d.pop("updated_at")

        updated_at_iso = d.pop("updated_at_iso")

        version = d.pop("version")

        def _parse_calibration(data: object) -> None | PoolCalibration | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                calibration_type_0 = PoolCalibration.from_dict(data)

                return calibration_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PoolCalibration | Unset, data)

        calibration = _parse_calibration(d.pop("calibration", UNSET))

        _prefixes = d.pop("prefixes", UNSET)
        prefixes: list[PrefixBrief] | Unset = UNSET
        if _prefixes is not UNSET:
            prefixes = []
            for prefixes_item_data in _prefixes:
                prefixes_item = PrefixBrief.from_dict(prefixes_item_data)

                prefixes.append(prefixes_item)

        pool_info = cls(
            created_at=created_at,
            created_at_iso=created_at_iso,
            description=description,
            dimension=dimension,
            labelled=labelled,
            model=model,
            name=name,
            size=size,
            tokenizer=tokenizer,
            updated_at=updated_at,
            updated_at_iso=updated_at_iso,
            version=version,
            calibration=calibration,
            prefixes=prefixes,
        )

        return pool_info
