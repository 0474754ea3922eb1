"""Errors the HTTP layer turns into JSON responses: one class per status."""

from __future__ import annotations


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Unavailable(ApiError):
    status = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class BadGateway(ApiError):
    """The store answered, but with something we cannot use (a corrupt frame)."""

    status = 502
