import os
import shutil
import subprocess
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
    assert client.get("/healthz").json() == {"status": "ok"}


def test_every_scheduled_job_names_a_registered_task():
    from config.celery import app

    app.loader.import_default_modules()
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in app.tasks, f"{name}: no task {entry['task']}"
