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
                 log: IO | None = None, env: dict[str, str] | None = None, pool: str = "solo") -> subprocess.Popen:
    """`celery worker` as its own process (solo pool, or prefork with one child), pointed at the test database
    and Redis."""
    environment = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                   "HF_HUB_OFFLINE": "1", "DJANGO_SETTINGS_MODULE": "config.settings",
                   "DJANGO_SECRET_KEY": "worker-test-key", **(env or {})}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", f"--pool={pool}", "--concurrency=1",
               f"--loglevel={loglevel}",
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


# --- Real Redis and web servers for the fault tests (tests/test_reliability_*.py, bench/faults.py) ---------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, directory: Path) -> subprocess.Popen:
    """A throwaway `redis-server` on loopback (no persistence), answering PING before this returns."""
    import redis

    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    if not wait_for(lambda: _pings(client), timeout=10, every=0.05):
        process.kill()
        raise RuntimeError(f"redis-server did not start on port {port}")
    return process


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def start_web(port: int, *, env: dict[str, str], log: IO | None = None, workers: int = 1,
              threads: int = 8) -> subprocess.Popen:
    """gunicorn with this project's gunicorn.conf.py on loopback, answering /healthz before this returns."""
    import urllib.request

    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "HF_HUB_OFFLINE": "1", **env}
    environment.pop("PYTEST_CURRENT_TEST", None)
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", str(ROOT / "gunicorn.conf.py"),
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)]
    output = log if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            return True
        except OSError:
            return process.poll() is not None

    wait_for(up, timeout=180, every=0.25)
    if process.poll() is not None:
        raise RuntimeError(f"gunicorn exited with {process.returncode}")
    return process
