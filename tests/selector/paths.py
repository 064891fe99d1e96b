"""The three ways one problem's exact search (selector/regions.py) runs on the CPU, by pool
size, so that small test pools exercise each of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import selector.regions as regions

# "direct": the greedy over the whole pool at once (pools up to DIRECT_POOL); "whole pool":
# speculation, verified on the whole pool (up to SMALL_POOL); "threshold set": speculation,
# verified on the candidates the threshold keeps (larger pools).
SEARCH_PATHS = ("direct", "whole pool", "threshold set")


@contextlib.contextmanager
def search_path(path: str) -> Iterator[None]:
    """Within the block, search as on a pool of the size that takes ``path``."""
    saved = regions.DIRECT_POOL, regions.SMALL_POOL
    if path != "direct":
        regions.DIRECT_POOL = 0
    if path == "threshold set":
        regions.SMALL_POOL = 0
    try:
        yield
    finally:
        regions.DIRECT_POOL, regions.SMALL_POOL = saved
