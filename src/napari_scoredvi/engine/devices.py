"""Choosing the torch device the engine runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the command line lists these choices without loading it
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Device names that can run here, best first (``"cpu"`` is always last)."""
    import torch

    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    return names + ["cpu"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then the CPU; an explicit device must exist here.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` for a device that is absent.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"device must be one of {DEVICE_CHOICES} (or e.g. 'cuda:1'), got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES[1:]:
        raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICE_CHOICES)} (or e.g. 'cuda:1')")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} was requested but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}); use device='auto' or 'cpu'"
            )
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
    if kind == "mps" and not _mps_available():
        raise RuntimeError(f"device {device!r} was requested but MPS is not available here; use device='auto' or 'cpu'")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable name, e.g. ``"cuda:0 (NVIDIA H100)"`` or ``"cpu (2 threads)"``."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
    return str(device)
