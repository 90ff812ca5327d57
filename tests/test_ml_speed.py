"""ml/ speed work (issue 19) on tiny models: length-sorted batching keeps input order, the int8
export is kept only when it agrees with the fp32 model, the precision follows the device, and
the new training loop learns what the old one did. Speed itself is measured in bench/, not here."""

import json
import multiprocessing
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ml
from ml import devices, onnx_int8
from ml.finetune import EpochBatches, train_classifier
from ml.inference import length_batches, run_batched
from ml.train_config import TrainConfig

from .test_ml_core import NEGATIVE, POSITIVE, fresh_registry, tiny_bert, tiny_classifier  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ml_baseline import classify_old, load_classifier_old, train_classifier_old  # noqa: E402

TEXTS = [
    "great", "the tv picture is bright and sharp and the sound is great too", "awful",
    "fast delivery and easy setup, love this laptop, the price is fair for the quality", "hate the keyboard",
    "noise cancelling headphones for the office", "where is my order", "i want a refund for my headphones",
    "cancel my order please", "wireless speaker with deep bass and long battery life and a bright screen",
] * 7


def test_length_batches_cover_every_row_once_within_the_budget():
    rng = random.Random(3)
    lengths = [rng.randint(1, 300) for _ in range(1000)]
    batches = length_batches(lengths, budget=2048, max_rows=40)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 40 and (len(batch) * longest <= 2048 or len(batch) == 1)
    longest_per_batch = [max(lengths[i] for i in batch) for batch in batches]
    assert longest_per_batch == sorted(longest_per_batch, reverse=True)  # sorted: little padding


def test_run_batched_returns_results_in_input_order(tiny_bert):  # noqa: F811
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = TEXTS[:]
    random.Random(0).shuffle(texts)
    seen_shapes = []

    def forward(batch):  # the number of real tokens of each row, as the "model output"
        seen_shapes.append(tuple(batch["input_ids"].shape))
        return batch["attention_mask"].sum(dim=1, keepdim=True).float()

    out = run_batched(tokenizer, texts, forward, device=torch.device("cpu"), max_length=64, budget=64)
    expected = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=64)["input_ids"]]
    assert out[:, 0].tolist() == expected
    assert len(seen_shapes) > 3  # the budget really split the input into several batches
    # each batch is padded to its own longest text, not the whole input's
    assert min(width for _, width in seen_shapes) < max(expected)


def test_classify_and_embed_match_the_old_fixed_batch_path(fresh_registry, tiny_classifier, tiny_bert):  # noqa: F811
    fresh_registry.configure(paths={"sentiment": str(tiny_classifier), "embedder": str(tiny_bert)})
    texts = TEXTS[:]
    random.Random(1).shuffle(texts)
    new = ml.classify("sentiment", texts, token_budget=96)
    model, tokenizer = load_classifier_old(tiny_classifier, torch.device("cpu"))
    old = classify_old(model, tokenizer, torch.device("cpu"), texts)
    assert [p.label for p in new] == [p.label for p in old]
    assert np.allclose([p.score for p in new], [p.score for p in old], atol=1e-5)

    vectors = ml.embed(texts, token_budget=96)
    from bench.ml_baseline import embed_old, load_embedder_old

    reference = embed_old(load_embedder_old(tiny_bert, torch.device("cpu")), texts)
    assert np.allclose(vectors, reference, atol=1e-5)


def test_precision_and_defaults_follow_the_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert devices.autocast_dtype(cpu) is None  # fp32 on the CPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert devices.autocast_dtype(cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert devices.autocast_dtype(cuda) is None  # an old GPU without bf16 trains in fp32

    assert devices.train_defaults(cpu) == (16, 5e-5)
    batch, lr = devices.train_defaults(cuda)
    assert batch > 16 and lr == pytest.approx(5e-5 * (batch / 16) ** 0.5)  # scaled together
    assert devices.train_defaults(cuda, 16, None) == (16, 5e-5)
    assert devices.train_defaults(cuda, None, 3e-4) == (batch, 3e-4)  # what is given is kept
    assert devices.token_budget(cuda) > devices.token_budget(cpu)
    monkeypatch.setenv("AISLE_TOKEN_BUDGET", "777")
    assert devices.token_budget(cuda) == 777

    assert devices.loader_workers(cpu) == 0
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    assert devices.loader_workers(cuda) == 0  # a Celery prefork child may not start workers


def test_length_grouped_epochs_are_permutations_with_little_padding():
    rng = random.Random(5)
    lengths = [rng.randint(3, 128) for _ in range(997)]
    grouped = list(EpochBatches(lengths, 16, torch.Generator().manual_seed(1)))
    plain = list(EpochBatches(lengths, 16, torch.Generator().manual_seed(1), group_by_length=False))
    for batches in (grouped, plain):
        assert sorted(i for batch in batches for i in batch) == list(range(997))
        assert len(batches) == len(EpochBatches(lengths, 16, torch.Generator()))

    def padding(batches):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) < padding(plain) / 3
    assert max(lengths[i] for i in grouped[0]) == max(lengths)  # the largest batch comes first
    again = list(EpochBatches(lengths, 16, torch.Generator().manual_seed(1)))
    assert again == grouped  # seeded


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_new_training_loop_matches_the_old_loop(tiny_bert, tmp_path):  # noqa: F811
    texts, labels = POSITIVE * 8 + NEGATIVE * 8, ["positive"] * 40 + ["negative"] * 40
    settings = {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "patience": 5, "seed": 11}
    old = train_classifier_old(texts, labels, base_model=tiny_bert, output_dir=tmp_path / "old",
                               config=TrainConfig(**settings), progress=False)
    same_batches = train_classifier(texts, labels, base_model=tiny_bert, output_dir=tmp_path / "plain",
                                    config=TrainConfig(**settings, group_by_length=False), progress=False)
    grouped = train_classifier(texts, labels, base_model=tiny_bert, output_dir=tmp_path / "grouped",
                               config=TrainConfig(**settings), progress=False)
    # Same batches in the same order: the same model, up to float rounding of the padding.
    old_w, new_w = _weights(tmp_path / "old"), _weights(tmp_path / "plain")
    assert old_w.keys() == new_w.keys()
    assert max(float((old_w[k] - new_w[k]).abs().max()) for k in old_w) < 1e-4
    assert same_batches.metrics["test"] == old.metrics["test"]
    assert same_batches.metrics["best_step"] == old.metrics["best_step"]
    # Length-grouped batches: other batches, the same quality.
    assert old.metrics["test"]["accuracy"] == 1.0
    assert abs(grouped.metrics["test"]["accuracy"] - old.metrics["test"]["accuracy"]) <= 0.1
    assert grouped.metrics["precision"] == "fp32" and grouped.metrics["config"]["batch_size"] == 8
    assert json.loads((tmp_path / "grouped" / "metrics.json").read_text())["steps"] == grouped.metrics["steps"]


def _scramble(source: Path, target: Path) -> None:
    """A broken quantizer: int8 weights, then noise on every weight matrix."""
    import onnx
    from onnx import numpy_helper

    onnx_int8.quantize_dynamic_int8(source, target)
    model = onnx.load(str(target))
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.ndim == 2 and array.dtype == np.float32:
            tensor.CopyFrom(numpy_helper.from_array(rng.normal(size=array.shape).astype(np.float32), tensor.name))
        elif array.ndim == 2 and array.dtype in (np.int8, np.uint8):  # matmul weights, embedding tables
            info = np.iinfo(array.dtype)
            noise = rng.integers(info.min, info.max, size=array.shape, dtype=array.dtype)
            tensor.CopyFrom(numpy_helper.from_array(noise, tensor.name))
    onnx.save(model, str(target))


def _plain_embedder(tiny_bert: Path, folder: Path) -> Path:  # noqa: F811
    """The tiny encoder as a sentence embedder that reads plain tokens (no chat template)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import AutoTokenizer, BertModel

    plain = folder.parent / f"{folder.name}-encoder"
    BertModel.from_pretrained(tiny_bert).save_pretrained(plain)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    encoder = modules.Transformer(str(plain), max_seq_length=64)
    pooling = modules.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[encoder, pooling], device="cpu").save(str(folder))
    return folder


def test_int8_export_is_kept_only_when_it_agrees(fresh_registry, tiny_classifier, tiny_bert, tmp_path):  # noqa: F811
    import shutil

    texts = TEXTS + POSITIVE + NEGATIVE
    classifier = tmp_path / "clf"
    shutil.copytree(tiny_classifier, classifier)
    report = onnx_int8.export_int8(classifier, "classifier", texts)
    assert report["passed"] and report["label_agreement"] >= 0.995
    assert (classifier / "onnx-int8" / "model.onnx").exists()

    fresh_registry.configure(paths={"sentiment": str(classifier)}, device="cpu")
    loaded = fresh_registry.get("sentiment")
    assert loaded.int8 is not None  # served by ONNX Runtime on the CPU
    served = ml.classify("sentiment", texts)
    model, tokenizer = load_classifier_old(classifier, torch.device("cpu"))
    reference = classify_old(model, tokenizer, torch.device("cpu"), texts)
    agree = np.mean([a.label == b.label for a, b in zip(served, reference, strict=True)])
    assert agree >= 0.995

    refused = onnx_int8.export_int8(classifier, "classifier", texts, quantize=_scramble)
    assert not refused["passed"] and refused["label_agreement"] < 0.995
    assert not (classifier / "onnx-int8" / "model.onnx").exists()
    assert json.loads((classifier / "onnx-int8" / "int8.json").read_text())["passed"] is False
    fresh_registry.unload()
    assert fresh_registry.get("sentiment").int8 is None  # back on the fp32 model

    with pytest.raises(ValueError, match="chat template"):  # the tiny folder's input is not plain tokens
        onnx_int8.export_int8(tiny_bert, "embedder", texts)
    embedder = _plain_embedder(tiny_bert, tmp_path / "emb")
    good = onnx_int8.export_int8(embedder, "embedder", texts)
    assert good["passed"] and good["mean_cosine"] >= 0.99
    bad = onnx_int8.export_int8(embedder, "embedder", texts, quantize=_scramble)
    assert not bad["passed"] and bad["mean_cosine"] < 0.99
    assert not (embedder / "onnx-int8" / "model.onnx").exists()


def test_a_tampered_int8_file_is_not_served(fresh_registry, tiny_classifier, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    classifier = tmp_path / "clf"
    shutil.copytree(tiny_classifier, classifier)
    assert onnx_int8.export_int8(classifier, "classifier", TEXTS)["passed"]
    fresh_registry.configure(paths={"sentiment": str(classifier)}, device="cpu")
    monkeypatch.setenv("AISLE_INT8", "0")
    assert fresh_registry.get("sentiment").int8 is None  # switched off
    monkeypatch.delenv("AISLE_INT8")
    fresh_registry.unload()
    with (classifier / "onnx-int8" / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    assert fresh_registry.get("sentiment").int8 is None  # not the file that was checked


@pytest.mark.django_db
@pytest.mark.int8
def test_promotion_stores_a_checked_int8_export_with_the_version(tiny_classifier, tmp_path,  # noqa: F811
                                                                  monkeypatch):
    import shutil

    from ml import versions
    from ml.models import ModelVersion

    # The tiny model is unsure of catalogue text (the default probes): check it on what it was taught.
    monkeypatch.setattr(onnx_int8, "probe_texts", lambda: TEXTS + POSITIVE + NEGATIVE)

    good = tmp_path / "good"
    shutil.copytree(tiny_classifier, good)
    version = versions.promote(ModelVersion.objects.create(task="sentiment", path=str(good)))
    version.refresh_from_db()
    assert version.is_active and version.metrics["int8"]["passed"]
    assert (good / "onnx-int8" / "model.onnx").exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    other = versions.promote(ModelVersion.objects.create(task="sentiment", path=str(broken)))
    other.refresh_from_db()
    assert other.is_active  # promotion does not wait on the int8 path
    assert other.metrics["int8"]["passed"] is False and other.metrics["int8"]["error"]
    assert not (broken / "onnx-int8" / "model.onnx").exists()
