"""`python -m nmt.serve checkpoint=PATH [host=..] [port=..]`: serve a model over HTTP until SIGTERM or Ctrl-C."""

import logging
import signal
import socket

import uvicorn
from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage, setup_logging
from nmt.config import ServeConfig, check_serve
from nmt.errors import NmtError
from nmt.serve.app import create_app
from nmt.serve.engine import Engine
from nmt.translator import SearchSettings

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


def serve(cfg: DictConfig) -> None:
    setup_logging()
    config: ServeConfig = OmegaConf.to_object(cfg)
    check_serve(config)
    SearchSettings.from_decode(config.decode)  # a bad decode.* value fails before the port is taken
    sock = bind(config.host, config.port)  # first: a taken port fails before seconds of loading
    engine = Engine.load(config.checkpoint, config.device, config.decode, config.attention_layer)
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


def main() -> None:
    run_stage("serve", serve)


if __name__ == "__main__":
    main()
