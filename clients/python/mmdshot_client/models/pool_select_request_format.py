from typing import Literal

PoolSelectRequestFormat = Literal["messages", "text"]

POOL_SELECT_REQUEST_FORMAT_VALUES: set[PoolSelectRequestFormat] = {
    "messages",
    "text",
}


def check_pool_select_request_format(value: str) -> PoolSelectRequestFormat:
    if value in POOL_SELECT_REQUEST_FORMAT_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {POOL_SELECT_REQUEST_FORMAT_VALUES!r}")
