"""The FastAPI application of ``antlers serve``: the API, the static page, the error policy.

``create_app(ServeConfig(...))`` builds it; nothing is loaded until a request needs it (the run
list comes from the weights files' metadata, each model is loaded by its first request, torch
with it). Middleware, outermost first: the Host check (``security.HostCheck``), the body limit
(``security.BodyLimit``). Errors, all ``{"error": "one line"}``: ``ApiError`` with its status,
an unusable image 400, any other ValueError 422 (bad parameters), FastAPI's validation errors
422, unknown routes 404, anything else 500 with the error's type only (the traceback goes to
the server's log, never to the browser).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from antlers.serve.api import make_router
from antlers.serve.runs import Runs, find_runs
from antlers.serve.security import ApiError, BodyLimit, HostCheck
from antlers.serve.topk import TopKJobs
from antlers.serve.uploads import Limits

__all__ = ["STATIC", "ServeConfig", "create_app"]

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("antlers.serve")


@dataclass(frozen=True)
class ServeConfig:
    """What ``antlers serve`` serves: ``runs`` (run folders, weights files or folders of runs),
    the address (``host``, ``port``), the upload limits and whether the lecture's untrained
    networks are listed too."""

    runs: tuple[str, ...] = ("runs",)
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 10.0
    max_pixels: int = 4096 * 4096
    lecture: bool = True

    @property
    def limits(self) -> Limits:
        return Limits(int(self.max_upload_mb * 2**20), self.max_pixels)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    from antlers.io.images import ImageError

    @app.exception_handler(ApiError)
    def api_error(_: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(ValueError)
    def value_error(_: Request, error: ValueError) -> JSONResponse:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        return _error(400 if isinstance(error, ImageError) else 422, first)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in error.errors()
        ]
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(HTTPException)
    def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(error).__name__}); the server's log has more")


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The application for ``config`` (default ``ServeConfig()``); runs are listed now and
    loaded on first use."""
    config = config or ServeConfig()
    runs = Runs(find_runs(list(config.runs), lecture=config.lecture))
    app = FastAPI(title="antlers", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runs = runs
    app.state.topk_jobs = TopKJobs()
    app.include_router(make_router(runs, config.limits, app.state.topk_jobs))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    _add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_bytes)
    app.add_middleware(HostCheck, served=config.host)  # added last: runs first
    return app
