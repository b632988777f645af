"""Running the service: the listening socket, opened before the model loads so a taken port is one
clear error, and uvicorn serving the app until SIGTERM or Ctrl-C, draining requests in flight."""

import logging
import signal
import socket

import uvicorn

from nmt.config import ServeConfig
from nmt.errors import NmtError
from nmt.service.app import create_app
from nmt.service.engine import Engine

log = logging.getLogger("nmt.serve")
# In-flight requests get this long to finish after SIGTERM before the server stops anyway.
GRACEFUL_SECONDS = 30


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, opened here so a taken port is one clear error (and port=0 works)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise NmtError(f"host={host} port={port}: cannot listen there ({error.strerror}); "
                       "choose another port, or stop what is using it") from None
    return sock


def run_server(sock: socket.socket, engine: Engine, config: ServeConfig) -> None:
    """Serve on `sock` until SIGTERM or Ctrl-C; requests in flight are answered first."""
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, config), log_config=None, access_log=False,
                                           timeout_graceful_shutdown=GRACEFUL_SECONDS))
    # uvicorn stops gracefully on SIGTERM, then raises the signal again for the previous handler:
    # this one, so the process ends with exit code 0 rather than being killed.
    signal.signal(signal.SIGTERM, lambda signum, frame: log.info("stopped on SIGTERM"))
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    log.info("serving http://%s:%d/ (API docs at /docs); %s, beam %d", shown, port, config.checkpoint,
             config.decode.beam_size)
    server.run(sockets=[sock])
