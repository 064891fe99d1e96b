from typing import Literal

ReadinessEmbeddingServerType0 = Literal["ok", "unavailable"]

READINESS_EMBEDDING_SERVER_TYPE_0_VALUES: set[ReadinessEmbeddingServerType0] = {
    "ok",
    "unavailable",
}


def check_readiness_embedding_server_type_0(value: str) -> ReadinessEmbeddingServerType0:
    if value in READINESS_EMBEDDING_SERVER_TYPE_0_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {READINESS_EMBEDDING_SERVER_TYPE_0_VALUES!r}")
