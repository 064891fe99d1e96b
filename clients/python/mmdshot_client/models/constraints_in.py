from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.label_quotas import LabelQuotas
    from ..models.metadata import Metadata


T = TypeVar("T", bound="ConstraintsIn")


@_attrs_define
class ConstraintsIn:
    """Constraints on the chosen set; every field optional.

    Attributes:
        balance_labels (bool | Unset):  Default: False.
        dedup_threshold (float | None | Unset): Max cosine.
        exclude_ids (list[str] | Unset):
        label_quotas (LabelQuotas | None | Unset):
        metadata_filter (Metadata | None | Unset):
        token_budget (int | None | Unset): Sum of the chosen token counts.
    """

    balance_labels: bool | Unset = False
    dedup_threshold: float | None | Unset = UNSET
    exclude_ids: list[str] | Unset = UNSET
    label_quotas: LabelQuotas | None | Unset = UNSET
    metadata_filter: Metadata | None | Unset = UNSET
    token_budget: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.label_quotas import LabelQuotas  # noqa: PLC0415
        from ..models.metadata import Metadata  # noqa: PLC0415

        balance_labels = self.balance_labels

        dedup_threshold: float | None | Unset
        if isinstance(self.dedup_threshold, Unset):
            dedup_threshold = UNSET
        else:
            dedup_threshold = self.dedup_threshold

        exclude_ids: list[str] | Unset = UNSET
        if not isinstance(self.exclude_ids, Unset):
            exclude_ids = self.exclude_ids

        label_quotas: dict[str, Any] | None | Unset
        if isinstance(self.label_quotas, Unset):
            label_quotas = UNSET
        elif isinstance(self.label_quotas, LabelQuotas):
            label_quotas = self.label_quotas.to_dict()
        else:
            label_quotas = self.label_quotas

        metadata_filter: dict[str, Any] | None | Unset
        if isinstance(self.metadata_filter, Unset):
            metadata_filter = UNSET
        elif isinstance(self.metadata_filter, Metadata):
            metadata_filter = self.metadata_filter.to_dict()
        else:
            metadata_filter = self.metadata_filter

        token_budget: int | None | Unset
        if isinstance(self.token_budget, Unset):
            token_budget = UNSET
        else:
            token_budget = self.token_budget

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if balance_labels is not UNSET:
            field_dict["balance_labels"] = balance_labels
        if dedup_threshold is not UNSET:
            field_dict["dedup_threshold"] = dedup_threshold
        if exclude_ids is not UNSET:
            field_dict["exclude_ids"] = exclude_ids
        if label_quotas is not UNSET:
            field_dict["label_quotas"] = label_quotas
        if metadata_filter is not UNSET:
            field_dict["metadata_filter"] = metadata_filter
        if token_budget is not UNSET:
            field_dict["token_budget"] = token_budget

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.label_quotas import LabelQuotas  # noqa: PLC0415
        from ..models.metadata import Metadata  # noqa: PLC0415

        d = dict(src_dict)
        balance_labels = d.pop("balance_labels", UNSET)

        def _parse_dedup_threshold(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        dedup_threshold = _parse_dedup_threshold(d.pop("dedup_threshold", UNSET))

        exclude_ids = cast(list[str], d.pop("exclude_ids", UNSET))

        def _parse_label_quotas(data: object) -> LabelQuotas | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                label_quotas_type_0 = LabelQuotas.from_dict(data)

                return label_quotas_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LabelQuotas | None | Unset, data)

        label_quotas = _parse_label_quotas(d.pop("label_quotas", UNSET))

        def _parse_metadata_filter(data: object) -> Metadata | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                metadata_filter_type_0 = Metadata.from_dict(data)

                return metadata_filter_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Metadata | None | Unset, data)

        metadata_filter = _parse_metadata_filter(d.pop("metadata_filter", UNSET))

        def _parse_token_budget(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        token_budget = _parse_token_budget(d.pop("token_budget", UNSET))

        constraints_in = cls(
            balance_labels=balance_labels,
            dedup_threshold=dedup_threshold,
            exclude_ids=exclude_ids,
            label_quotas=label_quotas,
            metadata_filter=metadata_filter,
            token_budget=token_budget,
        )

        return constraints_in
