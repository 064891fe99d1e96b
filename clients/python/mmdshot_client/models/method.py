from typing import Literal

Method = Literal["knn", "mmd", "mmr", "random"]

METHOD_VALUES: set[Method] = {
    "knn",
    "mmd",
    "mmr",
    "random",
}


def check_method(value: str) -> Method:
    if value in METHOD_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {METHOD_VALUES!r}")
