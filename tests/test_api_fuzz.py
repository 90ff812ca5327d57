"""The security probe's API fuzzing, bounded: schemathesis against a live gunicorn serving the test database.

Every operation of /api/schema/ is called anonymously and signed in (a session cookie with its CSRF token),
with a fixed example budget and seed, through the examples, coverage and fuzzing phases, and each response
is checked: no server error (and none for an undeclared request content type), a documented status code,
a documented content type and a body that matches the documented schema. `make fuzz` runs the same checks,
with a bigger budget, against a server you start yourself.

gunicorn, not Django's live_server: schemathesis sends some bodies chunked, which the development server
cannot read (the leftover chunk breaks the next request on the connection), and the probe ran against
gunicorn too.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.middleware.csrf import _get_new_csrf_string

from tests import factories

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ST = Path(sys.executable).parent / "st"
EXAMPLES = 6  # per operation and phase: keeps both runs to well under a minute on 2 cores
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
UNLIMITED = "1000000/min"  # the throttles are tested in test_security_limits.py; here they would hide the API


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]  # the test database pytest-django created
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def server(tmp_path):
    """gunicorn on a free port, reading the test database (transactional test: the data is committed)."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # sessions made here must verify there
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "AISLE_SUPPORT_GENERATE": "off",
        **{f"AISLE_RATE_{scope}": UNLIMITED for scope in ("CART", "CHECKOUT", "REVIEW", "EVENTS", "AUTOCOMPLETE",
                                                          "SUPPORT")},
    }
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("")  # not the project's: its post_fork warms every model (tens of seconds)
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi:application", "-c", str(config),
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "gunicorn.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield url, tmp_path / "gunicorn.log"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _catalogue():
    laptops = factories.make_category("Laptops")
    factories.make_category("Gaming laptops", parent=laptops)
    for n in range(3):
        factories.make_product(category=laptops, title=f"Fuzz laptop {n}", stock=10)


def _signed_in_headers() -> list[str]:
    user = factories.make_user("fuzzer")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    csrf = _get_new_csrf_string()
    return ["-H", f"Cookie: {settings.SESSION_COOKIE_NAME}={session.session_key}; {settings.CSRF_COOKIE_NAME}={csrf}",
            "-H", f"X-CSRFToken: {csrf}"]


def _schemathesis(url: str, har: Path, extra: list[str]) -> subprocess.Popen:
    # One worker per run, the two runs side by side: schemathesis' threaded workers (-w 2) now and then trip
    # CPython 3.11's "AST constructor recursion depth mismatch" inside hypothesis, an error of the tool.
    # 60 s per request: the first chat message a run gets through loads the assistant's models in the cold worker.
    return subprocess.Popen(
        [str(ST), "run", f"{url}/api/schema/?format=json", "--url", url, "-n", str(EXAMPLES), "--seed", "1",
         "-w", "1", "--phases", "examples,coverage,fuzzing", "--checks", CHECKS, "--request-timeout", "60",
         "--report", "har", "--report-har-path", str(har), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, har: Path) -> tuple[int, str, list[dict]]:
    output, _ = process.communicate(timeout=300)
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    return process.returncode, output, entries


def _summary(output: str, entries: list[dict]) -> dict:
    operations = re.search(r"Selected:\s*(\d+)/(\d+)\s+Tested:\s*(\d+)", output)
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    return {
        "operations": int(operations.group(2)) if operations else 0,
        "tested": int(operations.group(3)) if operations else 0,
        "cases": int(cases.group(1)) if cases else 0,
        "passed": int(cases.group(2)) if cases else 0,
        "requests": len(entries),
        "server_errors": sum(entry["response"]["status"] >= 500 for entry in entries),
    }


def _failures(output: str) -> str:
    """The report's failures, each line cut short (generated URLs run to kilobytes)."""
    start = output.find("= FAILURES =") if "= FAILURES =" in output else output.find("= ERRORS =")
    section = output[start:output.find("= WARNINGS =")] if start >= 0 else output[-4000:]
    return "\n".join(line[:240] for line in section.splitlines())[:8000]


def _statuses(entries: list[dict], method: str, path: str) -> set[int]:
    return {entry["response"]["status"] for entry in entries
            if entry["request"]["method"] == method and urlsplit(entry["request"]["url"]).path == path}


def test_schemathesis_finds_no_server_error_and_no_undocumented_response(server, tmp_path):
    url, server_log = server
    _catalogue()
    headers = _signed_in_headers()
    hars = {"anonymous": tmp_path / "anonymous.har", "signed in": tmp_path / "signed-in.har"}
    started = {"anonymous": _schemathesis(url, hars["anonymous"], []),
               "signed in": _schemathesis(url, hars["signed in"], headers)}
    runs = {name: _finish(process, hars[name]) for name, process in started.items()}
    for name, (code, output, entries) in runs.items():
        summary = _summary(output, entries)
        print(f"schemathesis {name}: {summary}")
        assert code == 0, f"{name}:\n{_failures(output)}\n--- server log ---\n{server_log.read_text()[-3000:]}"
        # Every operation of the schema was called, and every generated case passed every check.
        assert summary["operations"] >= 20 and summary["tested"] == summary["operations"], output[-3000:]
        assert summary["cases"] > 0 and summary["passed"] == summary["cases"], output[-3000:]
        assert summary["requests"] >= summary["cases"] and summary["server_errors"] == 0
    # The anonymous run was refused the orders; the signed-in one was really signed in and got them.
    assert 200 not in _statuses(runs["anonymous"][2], "GET", "/api/orders/")
    assert 200 in _statuses(runs["signed in"][2], "GET", "/api/orders/")
