from typing import Literal

TauSource = Literal["calibrated", "default", "request"]

TAU_SOURCE_VALUES: set[TauSource] = {
    "calibrated",
    "default",
    "request",
}


def check_tau_source(value: str) -> TauSource:
    if value in TAU_SOURCE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {TAU_SOURCE_VALUES!r}")
