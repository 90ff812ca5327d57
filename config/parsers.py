"""The API's JSON parser: bounded in size and depth, and refusing text the database cannot store.

DRF's JSONParser reads the whole stream (DATA_UPLOAD_MAX_MEMORY_SIZE is only checked by request.body),
recurses once per nesting level (a body of 50,000 "[" was a RecursionError, a 500), and passes on
NUL characters and unpaired surrogates ("\\u0000", "\\ud800"), which PostgreSQL refuses when a view
stores them (another 500). Each of these is a 400 with a message here.
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32


def bad_text(value: str) -> bool:
    """True for text PostgreSQL cannot store: a NUL character or an unpaired surrogate."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_structure(data: object, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Walk parsed JSON without recursion; ParseError past max_depth or on text bad_text() refuses."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if bad_text(node):
                raise ParseError("JSON text must not contain NUL characters or unpaired surrogates.")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise ParseError(f"JSON may be nested at most {max_depth} levels deep.")
        children = node.items() if isinstance(node, dict) else ((None, item) for item in node)
        for key, value in children:
            if key is not None:
                stack.append((key, depth))
            stack.append((value, depth + 1))


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            raise ParseError(f"The request body may be at most {limit} bytes.")
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise ParseError(f"The request body may be at most {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_no_constants)
        except RecursionError as exc:
            raise ParseError(f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep.") from exc
        except (ValueError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        check_structure(data)
        return data
