"""The real packaged models, loaded offline: MiniLM (embedding and as a fine-tuning base) and SmolLM2."""

import numpy as np
import pytest

import ml
from ml import packaged
from ml.finetune import train_classifier
from ml.registry import ModelRegistry
from ml.train_config import TrainConfig

from .test_ml_core import NEGATIVE, POSITIVE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packaged_registry():
    """A registry with no settings and no active versions: only the packaged defaults."""
    fresh = ModelRegistry()
    fresh.configure(paths={}, device="cpu")
    return fresh


@pytest.fixture
def use_registry(monkeypatch, packaged_registry):
    monkeypatch.setattr("ml.inference.registry", packaged_registry)
    return packaged_registry


def test_packaged_minilm_embeds_with_meaning(use_registry):
    vectors = ml.embed(["noise cancelling headphones for the office", "wireless earbuds with active noise cancellation",
                        "65 inch 4K smart TV"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    loaded = use_registry.get("embedder")
    assert loaded.source == "packaged default" and loaded.path == packaged.embedder_path()


def test_packaged_smollm2_generates_with_its_chat_template(use_registry):
    result = ml.generate_detailed(
        [{"role": "system", "content": "You are a concise shop assistant."},
         {"role": "user", "content": "In one sentence, what are wireless earbuds?"}],
        max_new_tokens=24, timeout_s=120,
    )
    assert 3 <= result.new_tokens <= 24
    assert len(result.text.split()) >= 3 and "<|im_start|>" not in result.text
    loaded = use_registry.get("generator")
    assert loaded.source == "packaged default" and (loaded.path / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()
    # The GGUF was unpacked once into the model cache as a plain checkpoint.
    assert (packaged.model_cache_dir() / "SmolLM2-135M-Instruct.Q4_1" / "config.json").exists()


def test_classifier_fine_tunes_from_the_packaged_minilm(tmp_path):
    texts, labels = POSITIVE * 4 + NEGATIVE * 4, ["positive"] * 20 + ["negative"] * 20
    result = train_classifier(texts, labels, base_model=packaged.embedder_path(), output_dir=tmp_path / "clf",
                              config=TrainConfig(epochs=3, batch_size=8, learning_rate=1e-4, patience=3),
                              progress=False)
    assert result.metrics["base_model"] == str(packaged.embedder_path())
    assert result.metrics["test"]["accuracy"] >= 0.75
    assert (tmp_path / "clf" / "model.safetensors").exists()
