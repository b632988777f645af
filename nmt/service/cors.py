"""CORS as LibreTranslate sends it: its headers on every response, so a web page on another origin
can call the service, and an OPTIONS preflight answered before any route sees it.

With `["*"]` (LibreTranslate's only setting) any origin may call; with a list of origins, a request
from one of them gets its origin back and credentials allowed, and any other gets no
Access-Control-Allow-Origin, so its browser keeps the answer from the page.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [(b"access-control-allow-headers", b"Authorization, Content-Type"),
           (b"access-control-expose-headers", b"Authorization"),
           (b"access-control-allow-methods", b"GET, POST"),
           (b"access-control-max-age", str(60 * 60 * 24 * 20).encode())]  # LibreTranslate's 20 days


class CORSMiddleware:
    def __init__(self, app: ASGIApp, origins: list[str]):
        self.app, self.any_origin, self.origins = app, "*" in origins, {o.rstrip("/") for o in origins}

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*"), *HEADERS]
        origin = next((value for name, value in scope["headers"] if name == b"origin"), b"").decode("latin-1")
        if origin.rstrip("/") not in self.origins:
            return [(b"vary", b"Origin"), *HEADERS]
        return [(b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin"), *HEADERS]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self._headers(scope)
        if scope["method"] == "OPTIONS":  # a preflight, or a client asking what is allowed
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"allow", b"GET, POST, OPTIONS"), (b"content-length", b"0"), *headers]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send=with_headers)
