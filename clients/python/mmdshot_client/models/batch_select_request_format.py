from typing import Literal

BatchSelectRequestFormat = Literal["messages", "text"]

BATCH_SELECT_REQUEST_FORMAT_VALUES: set[BatchSelectRequestFormat] = {
    "messages",
    "text",
}


def check_batch_select_request_format(value: str) -> BatchSelectRequestFormat:
    if value in BATCH_SELECT_REQUEST_FORMAT_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {BATCH_SELECT_REQUEST_FORMAT_VALUES!r}")
