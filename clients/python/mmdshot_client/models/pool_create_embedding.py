from typing import Literal

PoolCreateEmbedding = Literal["model", "provided"]

POOL_CREATE_EMBEDDING_VALUES: set[PoolCreateEmbedding] = {
    "model",
    "provided",
}


def check_pool_create_embedding(value: str) -> PoolCreateEmbedding:
    if value in POOL_CREATE_EMBEDDING_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {POOL_CREATE_EMBEDDING_VALUES!r}")
