"""The HTTP app: LibreTranslate 1.9's API (/translate, /detect, /languages, /translate_file and its
downloads, /suggest, /frontend/settings, /spec, /health), this project's /v1/translate, and the page
at /. Every error is `{"error": "..."}` with LibreTranslate's status codes; every answer carries
CORS headers."""

import asyncio
import logging
from contextlib import asynccontextmanager
from mimetypes import guess_type
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nmt.config import ServeConfig
from nmt.service.batcher import Batcher, Overloaded
from nmt.service.cors import CORSMiddleware
from nmt.service.endpoints import Endpoints
from nmt.service.engine import Engine
from nmt.service.files import FileStore
from nmt.service.requests import ApiError, read_payload
from nmt.service.schemas import (
    DetectedLanguage,
    DetectRequest,
    ErrorResponse,
    FrontendSettings,
    Health,
    Language,
    SuggestRequest,
    SuggestResponse,
    TranslateFileRequest,
    TranslateFileResponse,
    TranslateRequest,
    TranslateResponse,
    V1Request,
    V1Response,
)

log = logging.getLogger("nmt.serve")
STATIC = Path(__file__).resolve().parent / "static"
ERRORS = {status: {"model": ErrorResponse} for status in (400, 403, 413, 429)}
# LibreTranslate's clients check this title at /spec to tell a LibreTranslate server from anything else.
TITLE = "LibreTranslate"
DESCRIPTION = ("nmt: this project's neural machine translation models served with LibreTranslate's API "
               "(as LibreTranslate 1.9 answers it), plus /v1/translate with n-best, scores and attention.")


def create_app(engine: Engine, config: ServeConfig) -> FastAPI:
    batcher = Batcher(engine.decode, max_tokens=config.decode.max_tokens, max_wait=config.max_wait_ms / 1000,
                      max_queued_lines=config.max_queued_lines)
    files = FileStore(config.file_lifetime_s)
    endpoints = Endpoints(engine, batcher, config, files)  # first: a bad glossary fails before serving

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        sweeper = asyncio.get_running_loop().create_task(_sweep(files, min(60.0, config.file_lifetime_s)))
        try:
            yield
        finally:
            sweeper.cancel()
            await batcher.stop()
            files.close()

    app = FastAPI(title=TITLE, description=DESCRIPTION, lifespan=lifespan)
    app.state.endpoints = endpoints
    app.state.body_limit = config.max_body_bytes
    app.state.file_body_limit = config.max_body_bytes + config.max_file_bytes
    _add_error_handlers(app)
    _add_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_UnexpectedErrors)
    app.add_middleware(CORSMiddleware, origins=config.cors_origins)  # added last: outermost, on every answer
    return app


async def _sweep(files: FileStore, every: float) -> None:
    """Remove translated files whose lifetime is over, whether or not requests come."""
    while True:
        await asyncio.sleep(every)
        files.sweep()


def _body_doc(model: type, *types: str) -> dict:
    """The request body in the OpenAPI document; read by hand so its size is checked before parsing."""
    return {"requestBody": {"required": True, "content": {t: {"schema": model.model_json_schema()} for t in types}}}


JSON, FORM, MULTIPART = "application/json", "application/x-www-form-urlencoded", "multipart/form-data"


def _client(request: Request) -> str:
    """The client's address, what LibreTranslate's request limit counts by when there is no key
    (uvicorn takes it from X-Forwarded-For when the proxy is a trusted address)."""
    return request.client.host if request.client is not None else "unknown"


def _add_routes(app: FastAPI) -> None:
    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_none=True, responses=ERRORS,
              openapi_extra=_body_doc(TranslateRequest, JSON, FORM, MULTIPART), summary="Translate text or HTML")
    async def translate(request: Request) -> TranslateResponse:
        payload = await read_payload(request, request.app.state.body_limit)
        return await request.app.state.endpoints.libre_translate(payload, _client(request))

    @app.post("/translate_file", response_model=TranslateFileResponse, responses=ERRORS,
              openapi_extra=_body_doc(TranslateFileRequest, MULTIPART), summary="Translate a file")
    async def translate_file(request: Request) -> TranslateFileResponse:
        payload = await read_payload(request, request.app.state.file_body_limit, uploads=("file",))
        return await request.app.state.endpoints.translate_file(
            payload, _client(request), lambda file_id: str(request.url_for("download_file", file_id=file_id)))

    @app.get("/download_file/{file_id}", responses={404: {"model": ErrorResponse}},
             summary="A translated file, once (the URL /translate_file answered)")
    async def download_file(request: Request, file_id: str) -> Response:
        data, name = request.app.state.endpoints.download(file_id)
        return Response(data, media_type=guess_type(name)[0] or "application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/detect", response_model=list[DetectedLanguage], responses=ERRORS,
              openapi_extra=_body_doc(DetectRequest, JSON, FORM, MULTIPART), summary="The text's language")
    async def detect(request: Request) -> list[DetectedLanguage]:
        payload = await read_payload(request, request.app.state.body_limit)
        return request.app.state.endpoints.detect(payload, _client(request))

    @app.get("/languages", response_model=list[Language], summary="The languages, each with its targets")
    async def languages(request: Request) -> list[Language]:
        return request.app.state.endpoints.languages()

    @app.get("/frontend/settings", response_model=FrontendSettings, summary="What a client needs to set itself up")
    async def frontend_settings(request: Request) -> FrontendSettings:
        return request.app.state.endpoints.frontend_settings()

    @app.post("/suggest", response_model=SuggestResponse, responses=ERRORS,
              openapi_extra=_body_doc(SuggestRequest, JSON, FORM, MULTIPART), summary="Suggest a better translation")
    async def suggest(request: Request) -> SuggestResponse:
        payload = await read_payload(request, request.app.state.body_limit)
        return await request.app.state.endpoints.suggest(payload, _client(request))

    @app.get("/spec", summary="This OpenAPI document, where LibreTranslate's clients look for it")
    async def spec(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @app.post("/v1/translate", response_model=V1Response, responses=ERRORS,
              openapi_extra=_body_doc(V1Request, JSON), summary="n-best, scores, subwords, attention, glossary")
    async def translate_v1(request: Request) -> V1Response:
        payload = await read_payload(request, request.app.state.body_limit)
        return await request.app.state.endpoints.translate_v1(payload, _client(request))

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
        # "Slowdown:" as LibreTranslate's 429s say, so its clients back off the same way.
        return _error(429, f"Slowdown: {error}; retry later", {"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), error.headers)



class _UnexpectedErrors:
    """A bug is a 500 `{"error": ...}` answered here, inside the CORS layer, so it has its headers too
    (an app's own handler for Exception would answer outside every middleware)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await _error(500, "internal error; the service log has the details")(scope, receive, send)
