"""The errors the server answers with: each an OpenAI-style JSON body,
{"error": {"message", "type", "param", "code"}}, with its HTTP status."""
from __future__ import annotations

from typing import Optional

from starlette.responses import JSONResponse

# the OpenAI error "type" for each status the server answers with
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 500: "server_error", 501: "not_implemented_error",
          503: "server_busy_error"}


class ApiError(Exception):
    """An answer other than success: status, the one-line message, the field at fault
    (param), a machine-readable code, extra headers (Retry-After)."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: Optional[str] = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, param, code)


def internal_error() -> ApiError:
    """what a client hears of an unexpected exception: no traceback (that goes to the log)"""
    return ApiError(500, "internal server error (the server's log has the details)", code="internal_error")
