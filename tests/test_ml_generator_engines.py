"""The generator's CPU engine (issue #18): a GGUF checkpoint on the CPU runs on llama.cpp when it is
installed (AISLE_GENERATOR_ENGINE=auto), anything else on transformers; the choice can be forced."""

import pytest

from ml import llama_engine, packaged
from ml.registry import load_generator

from .ml_tiny import make_tiny_generator


def test_only_a_folder_holding_just_a_gguf_is_run_on_llama_cpp(tmp_path):
    assert llama_engine.gguf_file(packaged.generator_gguf_dir()).suffix == ".gguf"
    tiny = make_tiny_generator(tmp_path / "tiny")  # a transformers folder (config.json): never llama.cpp
    assert llama_engine.gguf_file(tiny) is None
    assert llama_engine.gguf_file(tmp_path / "missing") is None


def test_the_engine_setting(monkeypatch):
    monkeypatch.setenv("AISLE_GENERATOR_ENGINE", "transformers")
    assert llama_engine.wanted() is False
    monkeypatch.setenv("AISLE_GENERATOR_ENGINE", "auto")
    assert llama_engine.wanted() is llama_engine.available()
    monkeypatch.setenv("AISLE_GENERATOR_ENGINE", "llama_cpp")
    if llama_engine.available():
        assert llama_engine.wanted() is True
    else:
        with pytest.raises(RuntimeError, match="not installed"):
            llama_engine.wanted()


def test_transformers_keeps_the_gguf_when_asked(monkeypatch):
    import torch

    monkeypatch.setenv("AISLE_GENERATOR_ENGINE", "transformers")
    model, tokenizer = load_generator(packaged.generator_gguf_dir(), torch.device("cpu"))
    assert not isinstance(model, llama_engine.LlamaGenerator) and tokenizer is not None


@pytest.mark.slow
@pytest.mark.skipif(not llama_engine.available(), reason="llama-cpp-python is not installed (a source build)")
def test_the_packaged_gguf_generates_on_llama_cpp_within_its_deadline(monkeypatch):
    import ml
    from ml.registry import registry

    monkeypatch.setenv("AISLE_GENERATOR_ENGINE", "auto")
    registry.configure(device="cpu")
    messages = [{"role": "user", "content": "Describe a wireless speaker in one sentence."}]
    generation = ml.generate_detailed(messages, max_new_tokens=24, timeout_s=120, avoid_words=["best"])
    assert generation.engine.startswith("llama.cpp") and generation.text and 0 < generation.new_tokens <= 24
    assert "best" not in generation.text.lower()
    cut = ml.generate_detailed(messages, max_new_tokens=200, timeout_s=0.05)
    assert cut.stopped_by_timeout
