from typing import Literal

Kernel = Literal["cosine", "laplace", "rbf", "softmax"]

KERNEL_VALUES: set[Kernel] = {
    "cosine",
    "laplace",
    "rbf",
    "softmax",
}


def check_kernel(value: str) -> Kernel:
    if value in KERNEL_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {KERNEL_VALUES!r}")
