"""Shared by the bench scripts: start gunicorn on this checkout and wait until it answers."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_gunicorn(port: int, workers: int, env: dict) -> subprocess.Popen:
    # `--config /dev/null`: plain sync workers, as the baselines were measured, and not the checkout's
    # gunicorn.conf.py (picked up from the working directory), whose post_fork warms every model first.
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--config", "/dev/null",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT, env={"DJANGO_SETTINGS_MODULE": "config.settings", **env},
    )
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    sys.exit("gunicorn did not start")
