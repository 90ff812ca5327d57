"""Next-item recommendation from a shopper's ordered history: a small SASRec in torch, no Django.

SASRec (Kang & McAuley 2018) reads the last `max_len` items a shopper touched, in order, through a
causal self-attention encoder, and scores every catalogue item as the next one (the output layer
shares the item embeddings). It is trained with a full softmax over the catalogue at every position
of every sequence (cross-entropy, as in Klenitskiy & Vasilev 2023: it trains faster and ranks better
than the original's sampled binary loss), with early stopping on a validation target when one is
given. At the shop's size (hundreds to a few thousand products, a few thousand shoppers) an epoch
takes seconds on one CPU core.

Items are matrix columns 0..n_items-1 (as in `recommend.algorithms`); inside the model they are
shifted by one so that 0 can pad sequences. `recommend.engine` trains it from behaviour events and
`recommend.evaluation` measures it on MovieLens-100k (leave-last-out); both go through this module.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class SeqConfig:
    """Architecture and training settings (saved beside the weights)."""

    n_items: int
    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.3
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5          # validation checks without improvement before stopping
    check_every: int = 2       # epochs between validation checks
    seed: int = 42
    threads: int = 1           # the CPU is shared with the web processes

    def as_dict(self) -> dict:
        return asdict(self)


def _torch():
    import torch  # heavy import: only where the sequential model is used

    return torch


def build_model(config: SeqConfig):
    """The SASRec module for a config (torch is imported here, not at module import)."""
    torch = _torch()
    nn = torch.nn

    class SASRec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.items = nn.Embedding(config.n_items + 1, config.dim, padding_idx=0)
            self.positions = nn.Embedding(config.max_len, config.dim)
            self.dropout = nn.Dropout(config.dropout)
            layer = nn.TransformerEncoderLayer(config.dim, config.heads, dim_feedforward=config.dim * 2,
                                               dropout=config.dropout, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.dim)
            nn.init.normal_(self.items.weight, std=0.02)
            nn.init.normal_(self.positions.weight, std=0.02)
            with torch.no_grad():
                self.items.weight[0].zero_()

        def forward(self, sequences):
            """(batch, max_len) left-padded item ids (column + 1) -> (batch, max_len, dim) states."""
            length = sequences.shape[1]
            # Positions count from the first real item, not from the padded edge: a short history at
            # serving time then looks like the start of a training sequence, which it is.
            positions = ((sequences > 0).cumsum(dim=1) - 1).clamp(min=0)
            x = self.items(sequences) * math.sqrt(self.config.dim) + self.positions(positions)
            x = self.dropout(x)
            # Causal attention; a padding position may attend to itself only, so no row is empty (NaN).
            causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=sequences.device), 1)
            padded = sequences == 0
            blocked = causal[None] | padded[:, None, :]
            blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=sequences.device)[None]
            mask = blocked.repeat_interleave(self.config.heads, dim=0)
            return self.norm(self.encoder(x, mask=mask))

        def logits(self, states):
            return states @ self.items.weight[1:].T  # (..., n_items): column c is item c

    return SASRec()


def pad_left(sequences: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """Item columns -> model ids (column + 1), the last `max_len` of each, left-padded with 0."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-max_len:]
        if tail:
            out[row, max_len - len(tail):] = np.asarray(tail, dtype=np.int64) + 1
    return out


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets): each sequence cut from its end into windows of max_len + 1 items; the
    target at each position is the next item (0 where padded: ignored by the loss)."""
    inputs, targets = [], []
    for seq in sequences:
        seq = list(seq)
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            window = seq[start:end]
            inputs.append(window[:-1])
            targets.append(window[1:])
            if start == 0:
                break
            end = start + 1  # the next window's last item is this one's first: every target once
    return pad_left(inputs, max_len), pad_left(targets, max_len)


class SequentialRecommender:
    """Train, score and save a SASRec over item columns."""

    name = "SASRec"

    def __init__(self, config: SeqConfig) -> None:
        self.config = config
        self.model = None
        self.best_epoch = 0
        self.history: list[tuple[int, float]] = []
        self.fit_seconds = 0.0

    def params(self) -> dict:
        c = self.config
        return {"dim": c.dim, "layers": c.layers, "heads": c.heads, "max_len": c.max_len, "dropout": c.dropout,
                "epochs": self.best_epoch}

    def fit(self, sequences: Sequence[Sequence[int]], *,
            validate: Callable[[SequentialRecommender], float] | None = None,
            progress: bool = False) -> SequentialRecommender:
        """Train on the sequences. With `validate` (a score to maximise, e.g. NDCG@10 on held-out next
        items), the weights of the best check are kept and training stops after `patience` checks
        without improvement; without it, all `epochs` run."""
        torch = _torch()
        c = self.config
        torch.manual_seed(c.seed)
        rng = np.random.default_rng(c.seed)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, c.threads))
        started = time.perf_counter()
        try:
            inputs, targets = training_windows(sequences, c.max_len)
            if not len(inputs):
                raise ValueError("no sequence has two items: nothing to learn a next item from")
            self.model = build_model(c)
            optimiser = torch.optim.Adam(self.model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
            x_all, y_all = torch.from_numpy(inputs), torch.from_numpy(targets)
            best, best_state, waited = -1.0, None, 0
            epochs = range(1, c.epochs + 1)
            if progress:
                from tqdm import tqdm

                epochs = tqdm(epochs, desc="SASRec epochs", unit="epoch")
            for epoch in epochs:
                self.model.train()
                order = rng.permutation(len(inputs))
                for start in range(0, len(order), c.batch_size):
                    batch = torch.from_numpy(order[start:start + c.batch_size])
                    x, y = x_all[batch], y_all[batch]
                    keep = y > 0
                    states = self.model(x)[keep]
                    loss = torch.nn.functional.cross_entropy(self.model.logits(states), y[keep] - 1)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                self.best_epoch = epoch
                if validate is not None and (epoch % c.check_every == 0 or epoch == c.epochs):
                    value = validate(self)
                    self.history.append((epoch, value))
                    if value > best + 1e-6:
                        best, best_state, waited = value, copy.deepcopy(self.model.state_dict()), 0
                        best_epoch = epoch
                    else:
                        waited += 1
                        if waited >= c.patience:
                            break
            if best_state is not None:
                self.model.load_state_dict(best_state)
                self.best_epoch = best_epoch
        finally:
            torch.set_num_threads(previous_threads)
        self.model.eval()
        self.fit_seconds = time.perf_counter() - started
        return self

    def score(self, sequences: Sequence[Sequence[int]], batch_size: int = 512) -> np.ndarray:
        """Next-item scores (len(sequences), n_items) for the given histories (item columns, oldest
        first). An empty history scores every item 0."""
        if self.model is None:
            raise RuntimeError("SequentialRecommender is not fitted")
        torch = _torch()
        padded = pad_left(sequences, self.config.max_len)
        out = np.zeros((len(sequences), self.config.n_items), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(padded), batch_size):
                x = torch.from_numpy(padded[start:start + batch_size])
                states = self.model(x)[:, -1]
                out[start:start + len(x)] = self.model.logits(states).numpy()
        out[~padded.any(axis=1)] = 0.0
        return out

    def recommend(self, sequence: Sequence[int], k: int = 10, exclude: Sequence[int] = ()) -> list[tuple[int, float]]:
        """[(item column, score)] best first for one history, never an item of `exclude`."""
        scores = self.score([sequence])[0]
        scores[list(exclude)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(c), float(scores[c])) for c in order if np.isfinite(scores[c])]

    # ------------------------------------------------------------------------------- persistence

    def state(self) -> dict:
        """What `save` writes: the config and the weights as plain tensors (loadable with weights_only)."""
        return {"config": self.config.as_dict(), "best_epoch": self.best_epoch,
                "weights": self.model.state_dict()}

    def save(self, path) -> None:
        _torch().save(self.state(), path)

    @classmethod
    def from_state(cls, state: dict) -> SequentialRecommender:
        model = cls(SeqConfig(**state["config"]))
        model.model = build_model(model.config)
        model.model.load_state_dict(state["weights"])
        model.model.eval()
        model.best_epoch = int(state.get("best_epoch", 0))
        return model

    @staticmethod
    def read_state(path) -> dict:
        """A saved state; weights_only: a tampered file cannot run code."""
        return _torch().load(path, map_location="cpu", weights_only=True)

    @classmethod
    def load(cls, path) -> SequentialRecommender:
        return cls.from_state(cls.read_state(path))
