from typing import Literal

InfoAuth = Literal["api_key", "none"]

INFO_AUTH_VALUES: set[InfoAuth] = {
    "api_key",
    "none",
}


def check_info_auth(value: str) -> InfoAuth:
    if value in INFO_AUTH_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {INFO_AUTH_VALUES!r}")
