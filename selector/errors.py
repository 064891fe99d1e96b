"""Exceptions raised by the selector library.

Every error the library raises on purpose derives from :class:`SelectorError`, so a caller
(the HTTP layer) can map them to status codes without catching anything else.
"""

from __future__ import annotations

from typing import Any


class SelectorError(Exception):
    """Base class of every error the library raises on purpose."""

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInputError(SelectorError, ValueError):
    """The arguments are malformed: wrong shapes, NaN, k out of range, unknown names."""


class UnknownKernelError(InvalidInputError):
    """The kernel name is not one of :data:`selector.kernels.KERNEL_NAMES`."""


class InfeasibleConstraintError(SelectorError):
    """No subset of the asked size satisfies the constraints.

    ``constraint`` names the constraint that could not be met (``token_budget``,
    ``label_quotas``, ``metadata_filter``, ``exclude``, ``dedup_threshold`` or ``pool_size``).
    """

    def __init__(self, constraint: str, message: str, **detail: Any) -> None:
        super().__init__(message, constraint=constraint, **detail)
        self.constraint = constraint


class DeviceUnavailableError(SelectorError):
    """A device was asked for by name but is not present on this machine."""


class EmbeddingModelError(SelectorError):
    """The embedding model could not be loaded (missing path, not a sentence-transformers model)."""


class SelectionCancelled(SelectorError):
    """The caller's ``should_stop`` answered true at a step boundary; the work was dropped."""
