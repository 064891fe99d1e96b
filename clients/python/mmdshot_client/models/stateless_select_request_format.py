from typing import Literal

StatelessSelectRequestFormat = Literal["messages", "text"]

STATELESS_SELECT_REQUEST_FORMAT_VALUES: set[StatelessSelectRequestFormat] = {
    "messages",
    "text",
}


def check_stateless_select_request_format(value: str) -> StatelessSelectRequestFormat:
    if value in STATELESS_SELECT_REQUEST_FORMAT_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {STATELESS_SELECT_REQUEST_FORMAT_VALUES!r}")
