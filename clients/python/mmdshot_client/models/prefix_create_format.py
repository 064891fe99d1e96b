from typing import Literal

PrefixCreateFormat = Literal["messages", "text"]

PREFIX_CREATE_FORMAT_VALUES: set[PrefixCreateFormat] = {
    "messages",
    "text",
}


def check_prefix_create_format(value: str) -> PrefixCreateFormat:
    if value in PREFIX_CREATE_FORMAT_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {PREFIX_CREATE_FORMAT_VALUES!r}")
