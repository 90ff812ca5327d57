"""Vector search over normalised embeddings: exact (numpy) below a size threshold, HNSW (usearch) above.

The exact store (ids + matrix) is always kept: it is the source of truth for saving, for
incremental updates and for measuring the approximate index's recall.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DEFAULT_HNSW_THRESHOLD = 20_000


def vector_to_bytes(vector) -> bytes:
    """An embedding as stored in a database column (float32 bytes)."""
    return np.asarray(vector, dtype=np.float32).tobytes()


def vector_from_bytes(data: bytes | memoryview) -> np.ndarray:
    """A stored embedding (float32 bytes; a memoryview on PostgreSQL) as an array."""
    return np.frombuffer(bytes(data), dtype=np.float32)


class VectorIndex:
    def __init__(self, dim: int, *, backend: str = "auto", hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
                 connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 64) -> None:
        if backend not in ("auto", "exact", "hnsw"):
            raise ValueError("backend must be 'auto', 'exact' or 'hnsw'")
        self.dim = dim
        self.backend_choice = backend
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_params = {"connectivity": connectivity, "expansion_add": expansion_add,
                            "expansion_search": expansion_search}
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._row: dict[int, int] = {}
        self._hnsw = None

    # --- size and backend ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self._row

    @property
    def backend(self) -> str:
        if self.backend_choice == "auto":
            return "hnsw" if len(self) >= self.hnsw_threshold else "exact"
        return self.backend_choice

    @property
    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def vector(self, item_id: int) -> np.ndarray:
        return self._vectors[self._row[int(item_id)]].copy()

    # --- updates ---------------------------------------------------------------------------
    def add(self, ids, vectors) -> None:
        """Insert or replace vectors by id (incremental; no rebuild)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = _normalise(np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim))
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("duplicate ids in one add() call")
        existing = [i for i in ids.tolist() if i in self._row]
        if existing:
            self.remove(existing)
        start = len(self._ids)
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.concatenate([self._vectors, vectors])
        for offset, item_id in enumerate(ids.tolist()):
            self._row[item_id] = start + offset
        if self._hnsw is not None:
            self._hnsw.add(ids, vectors)

    def remove(self, ids) -> int:
        ids = [int(i) for i in np.asarray(ids).reshape(-1) if int(i) in self._row]
        if not ids:
            return 0
        keep = np.ones(len(self._ids), dtype=bool)
        keep[[self._row[i] for i in ids]] = False
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]
        self._row = {item_id: row for row, item_id in enumerate(self._ids.tolist())}
        if self._hnsw is not None:
            for item_id in ids:
                self._hnsw.remove(item_id)
        return len(ids)

    # --- search ----------------------------------------------------------------------------
    def search(self, queries, k: int = 10, *, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids and cosine similarities per query: arrays of shape (n_queries, k').

        k' = min(k, len(self)). `exact=True` forces brute force (used to measure HNSW recall).
        """
        queries = _normalise(np.asarray(queries, dtype=np.float32).reshape(-1, self.dim))
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        use_exact = exact if exact is not None else self.backend == "exact"
        if use_exact:
            return self._exact(queries, k)
        return self._approximate(queries, k)

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self._vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return self._ids[top], np.take_along_axis(top_scores, order, axis=1)

    def _approximate(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._hnsw_index()
        matches = index.search(queries, k)
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(len(queries), -1)[:, :k]
        distances = np.asarray(matches.distances, dtype=np.float32).reshape(len(queries), -1)[:, :k]
        return keys, 1.0 - distances  # usearch's cosine distance is 1 - similarity

    def _hnsw_index(self):
        if self._hnsw is None:
            from usearch.index import Index

            self._hnsw = Index(ndim=self.dim, metric="cos", dtype="f32", **self.hnsw_params)
            if len(self):
                self._hnsw.add(self._ids, self._vectors)
        return self._hnsw

    # --- persistence -----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self._ids)
        np.save(folder / "vectors.npy", self._vectors)
        meta = {"dim": self.dim, "backend": self.backend_choice, "hnsw_threshold": self.hnsw_threshold,
                "hnsw_params": self.hnsw_params, "count": len(self), "has_hnsw": self._hnsw is not None}
        if self._hnsw is not None:
            self._hnsw.save(str(folder / "hnsw.usearch"))
        (folder / "index.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> VectorIndex:
        folder = Path(folder)
        meta = json.loads((folder / "index.json").read_text())
        index = cls(meta["dim"], backend=meta["backend"], hnsw_threshold=meta["hnsw_threshold"],
                    **meta["hnsw_params"])
        index._ids = np.load(folder / "ids.npy")
        index._vectors = np.load(folder / "vectors.npy")
        index._row = {item_id: row for row, item_id in enumerate(index._ids.tolist())}
        if meta.get("has_hnsw") and (folder / "hnsw.usearch").exists():
            from usearch.index import Index

            index._hnsw = Index.restore(str(folder / "hnsw.usearch"))
            index._hnsw.expansion_search = meta["hnsw_params"]["expansion_search"]
        return index


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
