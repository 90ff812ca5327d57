"""The generator as a service: an OpenAI-compatible chat-completions server (vLLM, llama.cpp's server, TGI,
`transformers serve`) instead of a model loaded in every web process.

Switched on by AISLE_GENERATOR_URL (the server's base URL, e.g. http://generator:8000/v1); optional
AISLE_GENERATOR_API_KEY (sent as a Bearer token) and AISLE_GENERATOR_MODEL (the served model's name; by
default the first one the server lists). Every call is bounded: one overall deadline (the caller's
timeout_s), per-request timeouts within it, and AISLE_GENERATOR_RETRIES retries (default 2) with a short
backoff on connection errors, 429 and 5xx. What comes back is a Generation like the in-process path's,
so the callers' grounding checks (ml.grounding, merchandising's fact check) apply unchanged.

Constrained decoding (avoid_words) needs the tokenizer and is not portable across servers: the words are
left to the fact check, which flags them. Plain Python and requests; imports no app.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
DEFAULT_RETRIES = 2
BACKOFF_S = 0.5
RETRY_STATUSES = {429, 500, 502, 503, 504}


class GeneratorServerError(RuntimeError):
    """The server could not be reached in time, or answered with an error."""


@dataclass(frozen=True)
class ServerConfig:
    url: str
    api_key: str = ""
    model: str = ""
    retries: int = DEFAULT_RETRIES

    @property
    def base(self) -> str:
        """The base URL ending in /v1 (accepted with or without it)."""
        url = self.url.rstrip("/")
        return url if url.endswith("/v1") else f"{url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def server_config() -> ServerConfig | None:
    """From the environment (read on each call, so a test or a shell can switch it); None: in-process."""
    url = os.environ.get("AISLE_GENERATOR_URL", "").strip()
    if not url:
        return None
    return ServerConfig(url=url, api_key=os.environ.get("AISLE_GENERATOR_API_KEY", ""),
                        model=os.environ.get("AISLE_GENERATOR_MODEL", ""),
                        retries=max(0, int(os.environ.get("AISLE_GENERATOR_RETRIES", DEFAULT_RETRIES))))


_session = threading.local()
_models: dict[str, str] = {}


def _http() -> requests.Session:
    # One keep-alive session per thread (requests sessions are not thread-safe).
    if not hasattr(_session, "value"):
        _session.value = requests.Session()
    return _session.value


def _request(config: ServerConfig, method: str, path: str, deadline: float, **kwargs) -> dict:
    """One call with retries, none of it past the deadline."""
    attempt, last_error = 0, "no attempt made"
    while True:
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise GeneratorServerError(f"the generator server did not answer in time ({last_error})")
        try:
            response = _http().request(method, f"{config.base}{path}", headers=config.headers(),
                                       timeout=(min(CONNECT_TIMEOUT_S, left), left), **kwargs)
            if response.status_code not in RETRY_STATUSES:
                if response.status_code >= 400:
                    raise GeneratorServerError(f"the generator server answered {response.status_code}: "
                                               f"{response.text[:200]}")
                return response.json()
            last_error = f"HTTP {response.status_code}"
        except (requests.ConnectionError, requests.Timeout) as error:
            last_error = error.__class__.__name__
        except ValueError as error:  # not JSON
            raise GeneratorServerError(f"the generator server sent no JSON: {error}") from error
        if attempt >= config.retries:
            raise GeneratorServerError(f"the generator server failed after {attempt + 1} tries ({last_error})")
        attempt += 1
        log.warning("Generator server %s: %s; retry %d of %d", config.base, last_error, attempt, config.retries)
        time.sleep(min(BACKOFF_S * attempt, max(0.0, deadline - time.monotonic())))


def served_model(config: ServerConfig, deadline: float) -> str:
    """AISLE_GENERATOR_MODEL, or the first model the server lists (asked once per URL)."""
    if config.model:
        return config.model
    if config.base not in _models:
        listed = _request(config, "GET", "/models", deadline).get("data") or []
        if not listed:
            raise GeneratorServerError("the generator server lists no model; set AISLE_GENERATOR_MODEL")
        _models[config.base] = listed[0]["id"]
    return _models[config.base]


def chat(config: ServerConfig, messages: list[dict], *, max_new_tokens: int, temperature: float,
         timeout_s: float, seed: int | None = 0) -> tuple[str, int, bool, str]:
    """(text, completion tokens, cut by the token cap, model name) from /v1/chat/completions."""
    deadline = time.monotonic() + timeout_s
    model = served_model(config, deadline)
    body = {"model": model, "messages": messages, "max_tokens": max_new_tokens, "temperature": temperature,
            "stream": False}
    if seed is not None:
        body["seed"] = seed
    answer = _request(config, "POST", "/chat/completions", deadline, json=body)
    try:
        choice = answer["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as error:
        raise GeneratorServerError(f"unexpected answer from the generator server: {str(answer)[:200]}") from error
    tokens = int((answer.get("usage") or {}).get("completion_tokens") or len(text.split()))
    return text.strip(), tokens, choice.get("finish_reason") == "length", model
