"""Evaluation metrics in plain numpy (no scikit-learn dependency)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def per_class_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> dict:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(labels) if labels is not None else sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    result = {}
    for label in labels:
        tp = int(((y_pred == label) & (y_true == label)).sum())
        fp = int(((y_pred == label) & (y_true != label)).sum())
        fn = int(((y_pred != label) & (y_true == label)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return result


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    scores = per_class_f1(y_true, y_pred, labels)
    return float(np.mean([s["f1"] for s in scores.values()])) if scores else 0.0


def classification_report(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> dict:
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred, labels),
            "per_class": per_class_f1(y_true, y_pred, labels), "count": len(y_true)}


def recall_at_k(similarities: np.ndarray, k: int = 1) -> float:
    """Row i's correct match is column i; the share of rows where it ranks in the top k."""
    correct = np.diag(similarities)[:, None]
    rank = (similarities > correct).sum(axis=1)
    return float((rank < k).mean()) if len(similarities) else 0.0
