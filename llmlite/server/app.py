"""The ASGI app: Starlette, run by uvicorn.

Starlette rather than FastAPI: the API's shapes are OpenAI's (and Ollama's), errors
included, so FastAPI's pydantic validation and its 422 bodies would be overridden
everywhere; Starlette is the maintained core FastAPI is built on, with streaming
responses, middleware and routing and nothing to work around. uvicorn is its usual
server, with disconnects reported to the app (what stops a generation early).

Each API is a router module with a ROUTES list; ROUTERS below holds them all (OpenAI's
and Ollama's). Around the routes, outermost first: CORS (only with --cors), the API key
(only with --api-key), and the handlers that turn every error, the unexpected ones
included, into a JSON body: Ollama's shape under its /api/ paths (ERROR_SHAPES), else
OpenAI's.
"""
from __future__ import annotations

import hmac
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llmlite.server import ollama_api, openai_api
from llmlite.server.errors import ApiError, internal_error

log = logging.getLogger("llmlite.serve")

ROUTERS = [openai_api.ROUTES, ollama_api.ROUTES]
# a path prefix -> how its API's errors look (an Ollama client reads {"error": "..."}); others: OpenAI's
ERROR_SHAPES = {ollama_api.PREFIX: ollama_api.error_response}
OPEN_PATHS = ("/", "/health")         # answered without the key: a liveness check tells nothing


def error_response(path: str, err: ApiError) -> JSONResponse:
    """err in the shape of the API that path belongs to"""
    for prefix, shape in ERROR_SHAPES.items():
        if path.startswith(prefix):
            return shape(err)
    return err.response()


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "model": request.app.state.engine.resident.name})


class ApiKey:
    """401 unless the request carries the key: `Authorization: Bearer KEY` (what OpenAI
    clients send) or `x-api-key: KEY`. Compared in constant time."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    def _given(self, scope) -> bytes:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            return auth[7:].strip()
        return headers.get(b"x-api-key", b"")

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope["method"] != "OPTIONS" and scope["path"] not in OPEN_PATHS
                and not hmac.compare_digest(self._given(scope), self.key)):
            err = ApiError(401, "a valid API key is required (Authorization: Bearer KEY)", code="invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})
            await error_response(scope["path"], err)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(request.url.path, exc)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route, a wrong method) in the same shape"""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return error_response(request.url.path, ApiError(
        exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code,
        headers=dict(exc.headers or {})))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request.url.path, internal_error())


def build_app(engine, api_key: str | None = None, cors: str | None = None) -> Starlette:
    """The app over an Engine; api_key: required of every request but OPEN_PATHS;
    cors: the origin allowed to call from a browser ("*": any), None: no CORS headers."""
    routes = [Route(p, health, methods=["GET"]) for p in OPEN_PATHS]
    for r in ROUTERS:
        routes.extend(r)
    middleware = []
    if cors:
        middleware.append(Middleware(CORSMiddleware, allow_origins=[cors], allow_methods=["*"],
                                     allow_headers=["*"]))
    if api_key:
        middleware.append(Middleware(ApiKey, key=api_key))
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected})
    app.state.engine = engine
    return app
