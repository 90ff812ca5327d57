"""gunicorn settings for Aisle (used by the Dockerfile, docker-compose.yml and bench/faults.py).

Each worker loads its models in `post_fork`, before it accepts a request, so no shopper waits for a
cold model (the first search took ~33 s and the first chat ~39 s in a cold worker). `/readyz` answers
200 once the answering worker is warm. Models are not loaded in the master and shared by fork: torch's
thread pools do not survive a fork safely. Memory and worker count: README, "Reliability".

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""

import os

bind = os.environ.get("AISLE_BIND", "0.0.0.0:8000")
# 2 cores / 24 GiB: 3 workers x ~0.7-1 GiB of models each (README); threads serve slow I/O (the generator
# slot, the database) without another copy of the models.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("AISLE_WEB_THREADS", "4"))
# The warm-up runs before the worker's first heartbeat; give it room beyond the request timeout.
timeout = int(os.environ.get("AISLE_WEB_TIMEOUT", "120"))
graceful_timeout = 30
# Recycle workers now and then (jittered so they do not all warm up at once).
max_requests = int(os.environ.get("AISLE_WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("AISLE_ACCESS_LOG") or None
loglevel = os.environ.get("AISLE_WEB_LOG_LEVEL", "info")


def post_fork(server, worker):
    import django

    django.setup()
    from config import warmup

    state = warmup.warm()
    server.log.info("worker %s warm in %s s: %s %s", worker.pid, state["seconds"], state["models"],
                    state["errors"] or "")
