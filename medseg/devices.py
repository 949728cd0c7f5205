"""Turn a ``--device`` option into the config expression a bundle takes as its ``device``."""

from __future__ import annotations

from medseg.errors import MedsegError


def device_expression(device: str) -> str:
    """A ``$torch.device(...)`` config expression for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        MedsegError: for an unknown device or CUDA on a machine without it.
    """
    return f"$torch.device('{resolve_device(device)}')"


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda:N`` for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        MedsegError: for an unknown device or CUDA on a machine without it.
    """
    import torch

    name = device.strip().lower()
    if name == "auto":
        name = "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = "cuda:0"
    if name.startswith("cuda"):
        index = name.partition(":")[2]
        if not index.isdigit():
            raise MedsegError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
            raise MedsegError(f"device {device!r} asked for, but this machine has no such CUDA GPU")
    elif name != "cpu":
        raise MedsegError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return name
