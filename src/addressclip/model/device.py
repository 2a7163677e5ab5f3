"""Where torch runs: the one device resolver and the one CPU-thread setter of the project."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from addressclip.errors import ConfigError


def resolve_device(
    name: str | torch.device = "auto", local_rank: int = 0, field: str = "device"
) -> torch.device:
    """'auto' -> the local rank's GPU when there is one, else the CPU; anything else is checked.

    `field` names the option in the error ('--device', 'train.device'), so a user sees which setting to
    change when they ask for CUDA on a machine without one.
    """
    if isinstance(name, torch.device):
        device = name
    elif str(name) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            device = torch.device(str(name))
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"{field}: '{name}' is not a torch device ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{field}={name} but no CUDA device is available here; use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{field}={name} but no MPS device is available here; use cpu or auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads; None or 0 keeps torch's default."""
    if threads:
        torch.set_num_threads(int(threads))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny-tensor work on one CPU thread.

    Measured on the 2-core machine while other processes ran: CLIP-Adapter's training took 29 s with
    torch's 2 OpenMP threads and 8 s with one — ops on a few hundred numbers gain nothing from a
    second thread, and stall whenever the other core is busy.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
