"""The one place that turns a ``--device`` string into a ``torch.device``, for every stage alike."""
from __future__ import annotations

import torch

from smie.features.store import SmieError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given, but a CUDA request on a
    machine without CUDA is a user error. Under torchrun a bare CUDA device is this rank's GPU (``local_rank``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SmieError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SmieError(f"device {name!r} requested but no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device
