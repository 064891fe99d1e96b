"""The one place that turns a device name into a :class:`torch.device`."""

from __future__ import annotations

import torch

from selector.errors import DeviceUnavailableError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``name``.

    ``"auto"`` picks ``cuda`` when a GPU is present, else ``cpu``. An explicit ``cuda`` or
    ``cuda:N`` that this machine does not have raises :class:`DeviceUnavailableError`
    rather than silently falling back.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceUnavailableError(f"unknown device {name!r}", device=name) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"device {name!r} asked for but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"device {name!r} does not exist", device=name)
    elif device.type not in {"cpu", "mps"}:
        raise DeviceUnavailableError(f"unsupported device {name!r}", device=name)
    return device
