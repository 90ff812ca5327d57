"""Sign-in attempts go through django-axes everywhere: the admin login, the shop login and HTTP basic
auth on /api/. After AXES_FAILURE_LIMIT failures (by address, and by username) further attempts,
the right password included, are refused with 429 until AXES_COOLOFF_TIME has passed, so a password
cannot be guessed by brute force (each guess also cost ~0.4 s of password hashing).
"""

from __future__ import annotations

import math

from axes.helpers import get_cool_off
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import status
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed, ParseError

from .errors import is_api
from .parsers import bad_text

LOCKED_OUT = "Too many failed sign-in attempts. Please try again later."


def retry_after_seconds(request: HttpRequest | None = None) -> int:
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds())) if cool_off else 3600


class LockedOut(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = LOCKED_OUT
    default_code = "locked_out"


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; JSON on the API, a short page elsewhere."""
    if is_api(request):
        response = JsonResponse({"detail": LOCKED_OUT}, status=429)
    else:
        response = HttpResponse(f"<!doctype html><title>Locked out</title><h1>Locked out</h1><p>{LOCKED_OUT}</p>",
                                status=429)
    response["Retry-After"] = str(retry_after_seconds(request))
    return response


class LockoutBasicAuthentication(BasicAuthentication):
    """DRF's basic auth, with the attempt made on the Django request so axes counts and locks it."""

    def authenticate_credentials(self, userid: str, password: str, request=None):
        if bad_text(userid) or bad_text(password):
            raise ParseError("The user name and password must not contain NUL characters.")
        http_request = getattr(request, "_request", request)
        user = authenticate(request=http_request, username=userid, password=password)
        if getattr(http_request, "axes_locked_out", False):
            raise LockedOut()
        if user is None:
            raise AuthenticationFailed("Invalid username/password.")
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return (user, None)


class LockoutBasicScheme(OpenApiAuthenticationExtension):
    """The schema names it as plain HTTP basic auth (the lockout is not part of the contract)."""

    target_class = LockoutBasicAuthentication
    name = "basicAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "basic"}
