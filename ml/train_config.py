"""Training settings and results (no torch import, so Django can load them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    patience: int = 2
    eval_every: int | None = None  # steps between validations; None = once per epoch
    max_steps: int | None = None
    seed: int = 42


@dataclass
class TrainResult:
    path: Path
    metrics: dict
    labels: list[str]
    test_texts: list[str] = field(default_factory=list)
    test_labels: list[str] = field(default_factory=list)
