"""Where models run and how hard: the device (CUDA when present, else the CPU; AISLE_DEVICE
overrides), the inference dtype, the token budget of one batch, and the training precision and
defaults per device. No Django here: the GPU bench imports this with only the stock ML stack."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Tokens (rows x padded length) in one inference batch. On a GPU a batch must be large enough to
# fill the chip (the old 32 rows used a few percent of an H200); on a CPU a small batch keeps the
# activations in cache, and larger ones were no faster on 2 cores. AISLE_TOKEN_BUDGET overrides.
CUDA_TOKEN_BUDGET = 131_072
CPU_TOKEN_BUDGET = 4_096

# Training batch sizes per device; the learning rate moves with the batch (square-root rule from
# the reference point 16 rows at 5e-5, the settings the IMDB figures were measured with).
REFERENCE_BATCH_SIZE = 16
REFERENCE_LEARNING_RATE = 5e-5
TRAIN_BATCH_SIZE = {"cuda": 64, "cpu": 16}


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


def token_budget(device: torch.device) -> int:
    """Padded tokens per inference batch on this device ($AISLE_TOKEN_BUDGET overrides)."""
    configured = os.environ.get("AISLE_TOKEN_BUDGET", "").strip()
    if configured:
        return max(1, int(configured))
    return CUDA_TOKEN_BUDGET if device.type == "cuda" else CPU_TOKEN_BUDGET


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The training autocast dtype: bf16 on a GPU that has it (no loss scaling needed, fp32 master
    weights kept), none (plain fp32) elsewhere: CPU autocast is slower than fp32 on our machines."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def enable_tf32() -> None:
    """Let fp32 matmuls that remain outside autocast use TF32 tensor cores (a no-op on the CPU)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def train_defaults(device: torch.device, batch_size: int | None = None,
                   learning_rate: float | None = None) -> tuple[int, float]:
    """(batch size, learning rate) for fine-tuning on this device; whatever is given is kept, and
    a learning rate that is not given follows the batch size."""
    batch_size = batch_size or TRAIN_BATCH_SIZE.get(device.type, REFERENCE_BATCH_SIZE)
    if learning_rate is None:
        learning_rate = REFERENCE_LEARNING_RATE * math.sqrt(batch_size / REFERENCE_BATCH_SIZE)
    return batch_size, learning_rate


def loader_workers(device: torch.device) -> int:
    """DataLoader worker processes: a few on a GPU host (collation overlaps the GPU's work), none on
    the CPU (the cores are the ones computing) nor inside a daemonic process such as a Celery
    prefork child, which may not start children."""
    if device.type != "cuda" or multiprocessing.current_process().daemon:
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // 2))


def describe(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
