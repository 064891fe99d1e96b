"""The options of a selection: :class:`SelectOptions`, their checks against a pool, and the
pinned candidates' checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

import numpy as np

from selector.constraints import Constraints
from selector.errors import InvalidInputError
from selector.methods import Method, resolve_method
from selector.pool import Pool


@dataclass(frozen=True)
class SelectOptions:
    """Every knob of a selection besides the data; see :func:`select` for their meaning."""

    k: int = 8
    kernel: str = "softmax"
    tau: float | str | None = None
    method: str = "mmd"
    joint: bool | None = None
    output_tau: float = 0.2
    label_tau: float = 0.05
    label_neighbors: int = 16
    constraints: Constraints | None = None
    k_range: tuple[int, int] | None = None
    num_subsets: int = 1
    beam_width: int | None = None
    refine: bool = True
    bias_constant: float = 1.0
    complexity_constant: float = 1.0
    mmr_lambda: float = 0.5
    fetch_k: int | None = None
    prefilter: bool | None = None
    prefilter_size: int = 1024
    initial_region: int | None = None
    compare_baselines: bool = False
    seed: int = 0
    should_stop: Callable[[], bool] | None = None
    pinned: Sequence[int] | None = None

    @classmethod
    def of(cls, options: Mapping[str, object]) -> SelectOptions:
        """The options named in ``options`` (keyword arguments of :func:`~selector.select`;
        an unknown name is a :class:`TypeError`, as for any function)."""
        known = {option.name for option in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"select() got an unexpected keyword argument {unknown[0]!r}")
        return cls(**cast(dict[str, Any], dict(options)))

    @property
    def strategy(self) -> Method:
        """The method as an object (:mod:`selector.methods`)."""
        return resolve_method(self.method, self.mmr_lambda)


def pinned_indices(values: Sequence[int] | None, pool_size: int) -> tuple[int, ...]:
    """The pinned pool indices, checked: integers, in range, distinct."""
    if values is None:
        return ()
    try:
        array = np.asarray(list(values))
    except TypeError as exc:
        raise InvalidInputError(f"pinned must be a sequence of pool indices: {exc}") from exc
    if array.size == 0:
        return ()
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_)
    ):
        raise InvalidInputError("pinned must be a flat sequence of integer pool indices")
    if array.min() < 0 or array.max() >= pool_size:
        raise InvalidInputError(f"pinned holds an index outside the pool ({pool_size} candidates)")
    if np.unique(array).size != array.size:
        raise InvalidInputError("pinned holds an index twice")
    return tuple(int(value) for value in array)


def check_options(settings: SelectOptions, pool: Pool, pinned: int) -> tuple[int, int]:
    """Validate the options against the pool (``pinned`` candidates taken already); returns
    ``(k_min, k_max)``."""
    resolve_method(settings.method, settings.mmr_lambda)  # an unknown method is an input error
    if settings.k_range is not None:
        k_min, k_max = settings.k_range
        if not 1 <= k_min <= k_max:
            raise InvalidInputError("k_range must satisfy 1 <= k_min <= k_max")
    else:
        k_min = k_max = settings.k
    if k_max < 1:
        raise InvalidInputError("k must be at least 1")
    if k_max > pool.size - pinned:
        left = f" besides the {pinned} pinned" if pinned else ""
        raise InvalidInputError(
            f"k={k_max} is larger than the pool ({pool.size - pinned} candidates{left})"
        )
    if settings.num_subsets < 1:
        raise InvalidInputError("num_subsets must be at least 1")
    if not 0.0 <= settings.mmr_lambda <= 1.0:
        raise InvalidInputError("mmr_lambda must lie in [0, 1]")
    if settings.label_neighbors < 1 or settings.label_tau <= 0 or settings.output_tau <= 0:
        raise InvalidInputError("label_neighbors, label_tau and output_tau must be positive")
    if settings.prefilter and pool.index is None:
        raise InvalidInputError("prefilter asked for but the pool has no index")
    return k_min, k_max
