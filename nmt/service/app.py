"""The HTTP app: LibreTranslate's /translate and /languages, this project's /v1/translate and
/health, and the page at /. Every error is `{"error": "..."}` with LibreTranslate's status codes."""

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from nmt.config import ServeConfig
from nmt.service.batcher import Batcher, Overloaded
from nmt.service.endpoints import Endpoints
from nmt.service.engine import Engine
from nmt.service.requests import ApiError, read_payload
from nmt.service.schemas import (
    DetectedLanguage,
    DetectRequest,
    ErrorResponse,
    Health,
    Language,
    TranslateRequest,
    TranslateResponse,
    V1Request,
    V1Response,
)

log = logging.getLogger("nmt.serve")
STATIC = Path(__file__).resolve().parent / "static"
ERRORS = {status: {"model": ErrorResponse} for status in (400, 403, 413, 429)}


def create_app(engine: Engine, config: ServeConfig) -> FastAPI:
    batcher = Batcher(engine.decode, max_tokens=config.decode.max_tokens, max_wait=config.max_wait_ms / 1000,
                      max_queued_lines=config.max_queued_lines)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="nmt", summary="Neural machine translation with LibreTranslate's API", lifespan=lifespan)
    app.state.endpoints = Endpoints(engine, batcher, config)
    app.state.body_limit = config.max_body_bytes
    _add_error_handlers(app)
    _add_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _body_doc(model: type, form: bool) -> dict:
    """The request body in the OpenAPI page; read by hand so its size is checked before parsing."""
    types = ["application/json"] + (["application/x-www-form-urlencoded"] if form else [])
    return {"requestBody": {"required": True, "content": {t: {"schema": model.model_json_schema()} for t in types}}}


def _add_routes(app: FastAPI) -> None:
    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_none=True, responses=ERRORS,
              openapi_extra=_body_doc(TranslateRequest, form=True), summary="Translate (LibreTranslate's API)")
    async def translate(request: Request) -> TranslateResponse:
        payload = await read_payload(request, request.app.state.body_limit)
        return await request.app.state.endpoints.libre_translate(payload)

    @app.post("/detect", response_model=list[DetectedLanguage], responses=ERRORS,
              openapi_extra=_body_doc(DetectRequest, form=True), summary="The text's language (LibreTranslate's API)")
    async def detect(request: Request) -> list[DetectedLanguage]:
        payload = await read_payload(request, request.app.state.body_limit)
        return request.app.state.endpoints.detect(payload)

    @app.get("/languages", response_model=list[Language], summary="The model's languages (LibreTranslate's API)")
    async def languages(request: Request) -> list[Language]:
        return request.app.state.endpoints.languages()

    @app.post("/v1/translate", response_model=V1Response, responses=ERRORS,
              openapi_extra=_body_doc(V1Request, form=False), summary="n-best, scores, subwords and attention")
    async def translate_v1(request: Request) -> V1Response:
        payload = await read_payload(request, request.app.state.body_limit)
        return await request.app.state.endpoints.translate_v1(payload)

    @app.get("/health", response_model=Health)
    async def health(request: Request) -> Health:
        return request.app.state.endpoints.health()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.message, error.headers)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> JSONResponse:
        return _error(429, f"too many requests: {error}; retry later", {"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the service log has the details")
