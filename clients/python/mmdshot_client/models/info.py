from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.info_auth import InfoAuth, check_info_auth

if TYPE_CHECKING:
    from ..models.limits import Limits


T = TypeVar("T", bound="Info")


@_attrs_define
class Info:
    """
    Attributes:
        auth (InfoAuth): api_key: every /v1 route needs `Authorization: Bearer <key>`; none: the service is open (no
            MMDSHOT_API_KEYS).
        device (str): Where the kernels run (cpu, cuda:0).
        dimension (int | None): Its embedding dimension; null until loaded.
        kernels (list[str]): The kernels a selection may name.
        limits (Limits):
        methods (list[str]): The methods a selection may name.
        model (None | str): The embedding model; null until loaded.
        tokenizers (list[str]): The tokenizers a pool may name at creation (default first; MMDSHOT_TOKENIZERS); empty
            until the models load.
        version (str): The service's version.
    """

    auth: InfoAuth
    device: str
    dimension: int | None
    kernels: list[str]
    limits: Limits
    methods: list[str]
    model: None | str
    tokenizers: list[str]
    version: str

    def to_dict(self) -> dict[str, Any]:
        auth: str = self.auth

        device = self.device

        dimension: int | None
        dimension = self.dimension

        kernels = self.kernels

        limits = self.limits.to_dict()

        methods = self.methods

        model: None | str
        model = self.model

        tokenizers = self.tokenizers

        version = self.version

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "auth": auth,
                "device": device,
                "dimension": dimension,
                "kernels": kernels,
                "limits": limits,
                "methods": methods,
                "model": model,
                "tokenizers": tokenizers,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.limits import Limits  # noqa: PLC0415

        d = dict(src_dict)
        auth = check_info_auth(d.pop("auth"))

        device = d.pop("device")

        def _parse_dimension(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        dimension = _parse_dimension(d.pop("dimension"))

        kernels = cast(list[str], d.pop("kernels"))

        limits = Limits.from_dict(d.pop("limits"))

        methods = cast(list[str], d.pop("methods"))

        def _parse_model(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        model = _parse_model(d.pop("model"))

        tokenizers = cast(list[str], d.pop("tokenizers"))

        version = d.pop("version")

        info = cls(
            auth=auth,
            device=device,
            dimension=dimension,
            kernels=kernels,
            limits=limits,
            methods=methods,
            model=model,
            tokenizers=tokenizers,
            version=version,
        )

        return info
