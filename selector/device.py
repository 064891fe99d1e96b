"""Devices and the thread policy: the one place that turns a device name into a
:class:`torch.device`, and how many torch CPU threads each stage of a selection uses."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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


_thread_lock = threading.Lock()
_thread_users = 0
_saved_threads = 0


@contextmanager
def cpu_threads_for(device: torch.device, count: int = 1) -> Iterator[None]:
    """Run torch's CPU ops with ``count`` intra-op threads inside the block (no-op off CPU).

    The search works on small tensors (a region of a few thousand candidates), where torch's
    thread pool costs more than it saves: single-threaded it ran 53 ms against 401 ms with two
    threads on a busy 2-core machine (bench/). The pool scan goes through numpy's BLAS and
    keeps its threads. Nested and concurrent blocks share one setting; the last to leave
    restores the caller's.
    """
    global _thread_users, _saved_threads
    if device.type != "cpu":
        yield
        return
    with _thread_lock:
        if _thread_users == 0:
            _saved_threads = torch.get_num_threads()
            torch.set_num_threads(count)
        _thread_users += 1
    try:
        yield
    finally:
        with _thread_lock:
            _thread_users -= 1
            if _thread_users == 0:
                torch.set_num_threads(_saved_threads)


def torch_threads_for(problems: int) -> int:
    """Torch CPU threads for work on ``problems`` problems at once: one suits the small
    tensors of a few problems (more thrash against numpy's BLAS threads on a small machine:
    the kernel of one column of an 8,192-candidate region took 3.8 ms with two threads on the
    2-core machine, 0.08 ms with one); a large batch's (B, L, d) products are big enough to
    use every thread."""
    return 1 if problems < 16 else torch.get_num_threads()


def search_threads(
    device: torch.device, problems: int, prefiltered: bool, one_by_one: bool = False
) -> contextlib.AbstractContextManager[None]:
    """The threads of a call's search stage over ``problems`` problems: a few problems, or
    problems solved ``one_by_one`` on host arrays, keep one torch thread from the scan to the
    end (switching threads between their stages cost more than it saved: 100k pool, 27
    against 19 ms per single selection; two threads' spinning workers made each small op of
    a batch's host searches take milliseconds beside numpy's BLAS threads); a large batch's
    growth rounds choose their own per chunk (:func:`torch_threads_for`), and a prefiltered
    batch uses what its size asks for."""
    if prefiltered:
        return cpu_threads_for(device, torch_threads_for(problems))
    if problems < 16 or one_by_one:
        return cpu_threads_for(device, 1)
    return contextlib.nullcontext()


def finishing_threads(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The threads of a call's last stage (auto-k, refinement, beam search, the report):
    small tensors per problem, so one."""
    return cpu_threads_for(device, 1)
