"""HTTP errors of the pose service: every client mistake is a 4xx with a one-line JSON body."""

from __future__ import annotations

__all__ = ["HTTPError", "bad_request", "error_body"]


class HTTPError(Exception):
    """A request the service refuses, with its HTTP status and a one-line message for the client.

    Attributes:
        status: the HTTP status code (4xx for client mistakes, 503 when the service is saturated).
        message: one line, no traceback; it becomes `{"error": message}`.
        headers: extra response headers (e.g. `Retry-After`).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())  # one line whatever the cause said
        self.headers = headers or {}


def bad_request(message: str) -> HTTPError:
    """A 400 with `message`."""
    return HTTPError(400, message)


def error_body(message: str) -> dict[str, str]:
    """The JSON body of every error response."""
    return {"error": " ".join(str(message).split())}
