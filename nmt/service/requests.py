"""Reading a request safely: a bounded body, its fields from JSON, a form or the query string (as
LibreTranslate reads them), validated into a typed model, and the checks every translation request
passes (API key, line count and length) before it is queued. Each failure is an `ApiError` whose
message says what is wrong, in LibreTranslate's words where its clients match on them."""

import json
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
Model = TypeVar("Model", bound=BaseModel)
# LibreTranslate's words for a request that needs a key and has none.
KEY_NEEDED = "Please contact the server operator to get an API key"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart form, read into memory within the body's limit."""

    filename: str
    data: bytes


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it is known to exceed `limit` bytes: from its declared
    length before reading anything, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_payload(request: Request, limit: int, uploads: tuple[str, ...] = ()) -> dict:
    """The request's fields: those of its body (JSON or a form, as LibreTranslate's clients send
    either), and of its query string for any the body does not have, so a POST with its parameters in
    the URL and an empty body is read too. A repeated form field becomes a list; the form fields named
    in `uploads` may be files (an `Upload`)."""
    fields = dict(_query(request))
    body = await read_body(request, limit)
    if not body.strip():
        return fields
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {error.start}); send UTF-8 text") from None
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        return fields | await _form(request, body, uploads)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(400, f"request body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object such as {\"q\": \"...\", ...}")
    return fields | payload


def _query(request: Request) -> dict:
    params = request.query_params
    return {key: values[0] if len(values) == 1 else values
            for key in params if (values := params.getlist(key))}


async def _form(request: Request, body: bytes, uploads: tuple[str, ...]) -> dict:
    async def replay() -> dict:  # the body was read already, within its limit; parse it from memory
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as error:  # noqa: BLE001 - the multipart parser's errors are all bad input
        raise ApiError(400, f"request body is not a valid form: {error}") from None
    fields = {}
    try:
        for key in form.keys():
            values = form.getlist(key)
            if any(isinstance(v, UploadFile) for v in values):
                if key not in uploads or len(values) > 1:
                    raise ApiError(400, f"{key}: files are not accepted here; send text fields")
                fields[key] = Upload(values[0].filename or "", await values[0].read())
            else:
                fields[key] = values[0] if len(values) == 1 else values
    finally:
        await form.close()
    return fields


def validate(model: type[Model], payload: dict) -> Model:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "body"
        if first["type"] == "missing":
            raise ApiError(400, f"Invalid request: missing {key} parameter") from None
        raise ApiError(400, f"Invalid request: {key}: {first['msg']}") from None


def check_key(given: str, keys: frozenset[str]) -> None:
    """With keys configured, only a listed key passes; the request is refused before any decoding."""
    if keys and given not in keys:
        raise ApiError(403, "Invalid API key" if given else KEY_NEEDED)


def check_lines(lines: list[str], max_lines: int, max_chars: int) -> None:
    if len(lines) > max_lines:
        raise ApiError(400, f"Invalid request: q has {len(lines)} lines; the limit is {max_lines} per request")
    for number, line in enumerate(lines, start=1):
        if len(line) > max_chars:
            raise ApiError(400, f"Invalid request: line {number} of q has {len(line)} characters; "
                                f"the limit is {max_chars}")
