from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.readiness_embedding_server_type_0 import (
    ReadinessEmbeddingServerType0,
    check_readiness_embedding_server_type_0,
)
from ..types import UNSET, Unset

T = TypeVar("T", bound="Readiness")


@_attrs_define
class Readiness:
    """
    Attributes:
        model_loaded (bool): The embedding model is loaded.
        pools_loaded (bool): The pools stored at start are loaded (/ready waits for it when MMDSHOT_READY_AFTER_LOAD is
            set).
        ready (bool): Selections can be served.
        store_open (bool): The store is open.
        embedding_server (None | ReadinessEmbeddingServerType0 | Unset): The remote embedding server
            (MMDSHOT_EMBEDDING_URL), when one is set: unavailable makes the replica not ready.
        message (None | str | Unset): Why not ready, when it is not.
        storage_full (bool | Unset): The last write found no space (writes answer 507 storage_full; reads still work, so
            the replica stays ready). Default: False.
    """

    model_loaded: bool
    pools_loaded: bool
    ready: bool
    store_open: bool
    embedding_server: None | ReadinessEmbeddingServerType0 | Unset = UNSET
    message: None | str | Unset = UNSET
    storage_full: bool | Unset = False

    def to_dict(self) -> dict[str, Any]:
        model_loaded = self.model_loaded

        pools_loaded = self.pools_loaded

        ready = self.ready

        store_open = self.store_open

        embedding_server: None | str | Unset
        if isinstance(self.embedding_server, Unset):
            embedding_server = UNSET
        elif isinstance(self.embedding_server, str):
            embedding_server = self.embedding_server
        else:
            embedding_server = self.embedding_server

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        storage_full = self.storage_full

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model_loaded": model_loaded,
                "pools_loaded": pools_loaded,
                "ready": ready,
                "store_open": store_open,
            }
        )
        if embedding_server is not UNSET:
            field_dict["embedding_server"] = embedding_server
        if message is not UNSET:
            field_dict["message"] = message
        if storage_full is not UNSET:
            field_dict["storage_full"] = storage_full

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        model_loaded = d.pop("model_loaded")

        pools_loaded = d.pop("pools_loaded")

        ready = d.pop("ready")

        store_open = d.pop("store_open")

        def _parse_embedding_server(data: object) -> None | ReadinessEmbeddingServerType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                embedding_server_type_0 = check_readiness_embedding_server_type_0(data)

                return embedding_server_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ReadinessEmbeddingServerType0 | Unset, data)

        embedding_server = _parse_embedding_server(d.pop("embedding_server", UNSET))

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        storage_full = d.pop("storage_full", UNSET)

        readiness = cls(
            model_loaded=model_loaded,
            pools_loaded=pools_loaded,
            ready=ready,
            store_open=store_open,
            embedding_server=embedding_server,
            message=message,
            storage_full=storage_full,
        )

        return readiness
