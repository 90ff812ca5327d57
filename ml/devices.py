"""Where models run: CUDA when present (half precision), else the CPU; AISLE_DEVICE overrides."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def choose_device(preferred: str | None = None) -> torch.device:
    """`preferred` or $AISLE_DEVICE ("cpu", "cuda", "cuda:1"); otherwise CUDA if available."""
    import torch

    wanted = (preferred or os.environ.get("AISLE_DEVICE", "")).strip().lower()
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            log.warning("AISLE_DEVICE=%s but CUDA is not available; using the CPU", wanted)
            return torch.device("cpu")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def inference_dtype(device: torch.device) -> torch.dtype:
    import torch

    # fp16 halves memory and doubles throughput on GPUs; CPUs are faster and exact in fp32.
    return torch.float16 if device.type == "cuda" else torch.float32


def describe(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
