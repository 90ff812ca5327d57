"""The generator behind AISLE_GENERATOR_URL (issue #18): a real OpenAI-compatible server (`transformers serve`
serving the packaged SmolLM2, unpacked to safetensors) started on a free loopback port; ml.generate_detailed
calls it instead of loading a model, within its deadline and retries, and a copy draft written through it
is fact-checked like any other."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import ml
from ml import remote
from ml.packaged import generator_gguf_dir
from ml.registry import converted_gguf_checkpoint, registry

from .factories import make_product

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "system", "content": "You write one short sentence."},
            {"role": "user", "content": "Describe a wireless speaker in one sentence."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    checkpoint = converted_gguf_checkpoint(generator_gguf_dir())
    port = free_port()
    folder = tmp_path_factory.mktemp("generator")
    log_path, hub_cache = folder / "server.log", folder / "hub"
    hub_cache.mkdir()  # it lists the models of a hub cache; an empty one, offline
    cli = Path(sys.executable).with_name("transformers")
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(cli), "serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache),
                                        "OMP_NUM_THREADS": "2"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/models", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail(f"the server did not come up:\n{log_path.read_text()[-3000:]}")
        yield url, str(checkpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def use_server(server_url, monkeypatch):
    url, model = server_url
    monkeypatch.setenv("AISLE_GENERATOR_URL", url)
    monkeypatch.setenv("AISLE_GENERATOR_MODEL", model)  # the name it serves the preloaded model under
    registry.unload("generator")
    return url


def test_generate_calls_the_server_and_loads_no_model(use_server):
    generation = ml.generate_detailed(MESSAGES, max_new_tokens=30, timeout_s=240)  # a shared CPU
    assert generation.text and generation.new_tokens > 0
    assert generation.engine.startswith("server: ") and use_server in generation.engine
    assert "generator" not in registry.loaded()  # nothing loaded in this process


def test_a_dead_server_fails_within_the_deadline_after_its_retries(monkeypatch):
    monkeypatch.setenv("AISLE_GENERATOR_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AISLE_GENERATOR_MODEL", "any")
    started = time.monotonic()
    with pytest.raises(remote.GeneratorServerError, match="after 3 tries"):
        ml.generate_detailed(MESSAGES, max_new_tokens=10, timeout_s=20)
    assert time.monotonic() - started < 5


def test_a_slow_answer_is_cut_at_the_deadline(use_server):
    started = time.monotonic()
    with pytest.raises(remote.GeneratorServerError, match="in time"):
        ml.generate_detailed(MESSAGES, max_new_tokens=400, timeout_s=0.3)
    assert time.monotonic() - started < 2


@pytest.mark.django_db
def test_a_copy_draft_written_by_the_server_is_fact_checked(use_server):
    from merchandising import services as copy

    product = make_product(title="Acme Wireless Speaker", features=["Bluetooth 5.3", "12-hour battery"])
    (draft,) = copy.request_drafts([product.pk], "marketing_line", "neutral", "short")
    status = copy.generate_draft(draft.pk, timeout=240)
    draft.refresh_from_db()
    assert status in ("ready", "needs_review"), draft.error
    assert draft.generator.startswith("server: ") and draft.text
    assert draft.flags == copy.fact_check(draft.text, copy.CopyFacts.from_dict(draft.facts))
    assert (status == "ready") == (draft.flags == [])
