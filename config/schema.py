"""The OpenAPI schema says every status code the API really answers with.

drf-spectacular documents the success response and whatever an operation lists in extend_schema; the
errors the framework itself produces (a body that is not JSON, bad credentials, a missing CSRF token, a
throttle, a locked-out sign-in, a page past the end) would otherwise be undocumented, and a client (or
schemathesis' conformance checks) could not tell them from a bug. They follow from how each view is set up,
so they are derived here from the view instead of being repeated on every operation.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticatedOrReadOnly

from .auth import LockoutBasicAuthentication


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for people.")


# A 400 is either {"detail": "..."} (a body or URL that cannot be read) or {"field": ["message", ...]}.
FIELD_ERRORS = {
    "type": "object",
    "description": "`detail`, or each bad field with its messages (nested for nested input).",
    "additionalProperties": {},
}
# gunicorn (the deployment's server) refuses a request line over 4094 bytes itself, with a short HTML page.
URI_TOO_LONG = {"description": "The URL is longer than the server reads (4094 bytes with gunicorn).",
                "content": {"text/html": {"schema": {"type": "string"}}}}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}


def _json(schema, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


class AisleAutoSchema(AutoSchema):
    """AutoSchema that adds the error responses a view can give (see the module docstring)."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        detail = self.resolve_serializer(ErrorDetailSerializer, "response").ref
        for code, response in self._error_responses(operation, detail).items():
            operation["responses"].setdefault(code, response)
        return operation

    def _error_responses(self, operation: dict, detail: dict) -> dict[str, dict]:
        authenticators = self.view.get_authenticators()
        unsafe = self.method not in ("GET", "HEAD", "OPTIONS")
        errors = {
            # config/inputguard.py refuses a NUL anywhere in the URL or query string, on every path.
            "400": _json(FIELD_ERRORS, "The request could not be read, or a field is invalid."),
            "414": URI_TOO_LONG,
        }
        if authenticators:
            # Wrong basic-auth credentials or, when signed in by session, a write without the CSRF token;
            # DRF answers 401 only when the first authenticator names a WWW-Authenticate challenge.
            first = authenticators[0]
            code = "401" if first.authenticate_header(self.view.request) else "403"
            errors[code] = _json(detail, "Not signed in, wrong credentials or no CSRF token.")
            if unsafe and any(isinstance(auth, SessionAuthentication) for auth in authenticators):
                errors["403"] = _json(detail, "No CSRF token, or not allowed.")
        if not self._allows_anyone():
            errors.setdefault("403", _json(detail, "Sign in first (or not allowed)."))
        if any(p.get("in") == "path" for p in operation.get("parameters", [])) or self._paginated():
            errors["404"] = _json(detail, "Not found (or a page past the end)." if self._paginated()
                                  else "Not found.")
        if "requestBody" in operation:
            errors["415"] = _json(detail, "The body's Content-Type is not one the API reads.")
        # The write-throttled views' get_throttles() reads request.method: the schema generator's mock request
        # carries the operation's method, so their reads correctly come out unthrottled.
        throttled = bool(getattr(self.view, "throttle_scope", None)) and bool(self.view.get_throttles())
        locks_out = any(isinstance(auth, LockoutBasicAuthentication) for auth in authenticators)
        if throttled or locks_out:
            errors["429"] = _json(detail, "Too many requests, or too many failed sign-ins: retry later.",
                                  RETRY_AFTER)
        return errors

    def _allows_anyone(self) -> bool:
        kinds = [type(permission) for permission in self.view.get_permissions()]
        if all(kind is AllowAny for kind in kinds):
            return True
        return self.method in ("GET", "HEAD", "OPTIONS") and all(
            kind in (AllowAny, IsAuthenticatedOrReadOnly) for kind in kinds)

    def _paginated(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

