"""Training settings and results (no torch import, so Django can load them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainConfig:
    epochs: int = 3
    # None: the device's default (ml.devices.train_defaults: 16 rows at 5e-5 on a CPU, 64 at 1e-4 on
    # a GPU); a learning rate left None follows the batch size.
    batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    patience: int = 2
    eval_every: int | None = None  # steps between validations; None = once per epoch
    max_steps: int | None = None
    seed: int = 42
    # Batches of similar-length texts (shuffled in groups of 50 batches, then the batches shuffled):
    # far less padding than random batches at the same randomness of the epoch.
    group_by_length: bool = True
    log_every: int = 50  # steps between reading the loss back from the device (each read waits on it)
    loader_workers: int | None = None  # None: ml.devices.loader_workers
    compile: bool = False  # torch.compile the model (also $AISLE_TORCH_COMPILE=1); pays off on long GPU runs


@dataclass
class TrainResult:
    path: Path
    metrics: dict
    labels: list[str]
    test_texts: list[str] = field(default_factory=list)
    test_labels: list[str] = field(default_factory=list)


@dataclass
class LoraTrainConfig:
    """A LoRA adapter over the generator (ml.lora). The defaults keep a run CPU-friendly: a rank-8 adapter on
    the attention's query and value projections only (~0.3% of SmolLM2-135M's weights), a context long
    enough for the copy writer's prompt plus a short description, and a couple of epochs."""

    epochs: int = 2
    batch_size: int = 4
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    # Prompt + copy tokens; an example whose prompt alone does not fit is skipped (with its reason), one whose
    # copy does not fit is cut, never its prompt: training sees exactly the prompt serving sends.
    max_length: int = 448
    val_fraction: float = 0.1
    max_steps: int | None = None
    patience: int = 2
    seed: int = 42
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
