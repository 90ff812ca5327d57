"""Real Celery worker processes for the integration tests (marked `worker`): started against the
test database and Redis, stopped at the end, and a wait helper for their effects."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database this test process uses (the test database, not the configured one)."""
    db = connection.settings_dict
    return (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{db['NAME']}")


def start_worker(*, queues: str = "default", name: str | None = None, loglevel: str = "INFO",
                 log: IO | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`celery worker` as its own process (solo pool), pointed at the test database and Redis."""
    environment = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                   "HF_HUB_OFFLINE": "1", "DJANGO_SETTINGS_MODULE": "config.settings",
                   "DJANGO_SECRET_KEY": "worker-test-key", **(env or {})}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", f"--loglevel={loglevel}",
               f"--queues={queues}", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if name:
        command += ["-n", f"{name}@%h"]
    output = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)


def stop_worker(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
