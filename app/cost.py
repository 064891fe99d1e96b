"""The cost of a request, from its shape alone, before any work: one formula, in units of
about one kernel evaluation between a pool example and a target point.

- scan: every problem's target points against the pool, ``problems * target_points * pool``;
- search: each greedy step scores the pool once per beam (``num_subsets``), plus the swap
  refinement and baselines, ``problems * k * (num_subsets + 1) * pool`` (``k``: the largest
  k asked; auto-k's ``k_max``);
- embedding: :data:`EMBED_CHAR_COST` per character to embed (the queries, the target texts,
  inline candidates), each text counted up to :data:`EMBED_CHARS_PER_TEXT` (the model
  truncates there).

A request above ``max_request_cost`` is refused with 422 ``too_costly``; one above
:data:`HEAVY_SHARE` of it runs as *heavy*: heavy requests never take the last compute worker,
so ordinary selections keep one (:class:`app.engine.FairExecutor`). Measured on a busy 2-core
machine over 10k random 384-dimensional vectors, a unit cost 0.3 to 2.5 µs (batches at the
low end, single greedy steps at the high end), a character of MiniLM embedding about 100 units.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EMBED_CHAR_COST = 100
EMBED_CHARS_PER_TEXT = 2_048
HEAVY_SHARE = 0.1


@dataclass(frozen=True)
class Cost:
    """A request's cost in units, by part."""

    scan: int
    search: int
    embed: int

    @property
    def total(self) -> int:
        return self.scan + self.search + self.embed


def embedded_chars(texts: Iterable[str]) -> int:
    """The characters of ``texts`` the model will embed."""
    return sum(min(len(text), EMBED_CHARS_PER_TEXT) for text in texts)


def selection_cost(
    *, pool: int, problems: int, target_points: int, k: int, num_subsets: int, chars: int
) -> Cost:
    """The cost of ``problems`` selections of up to ``k`` from a ``pool``, each against
    ``target_points`` points, ranking ``num_subsets`` subsets, embedding ``chars``."""
    return Cost(
        scan=problems * target_points * pool,
        search=problems * k * (num_subsets + 1) * pool,
        embed=chars * EMBED_CHAR_COST,
    )
