from typing import Literal

PrefixInfoSource = Literal["pool", "texts", "traffic"]

PREFIX_INFO_SOURCE_VALUES: set[PrefixInfoSource] = {
    "pool",
    "texts",
    "traffic",
}


def check_prefix_info_source(value: str) -> PrefixInfoSource:
    if value in PREFIX_INFO_SOURCE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {PREFIX_INFO_SOURCE_VALUES!r}")
