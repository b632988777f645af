"""`python -m nmt.serve checkpoint=PATH [host=..] [port=..]`: serve a checkpoint or an export over HTTP
(LibreTranslate's API, /v1/translate, a page at /) until SIGTERM or Ctrl-C."""

from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage
from nmt.config import ServeConfig
from nmt.io import setup_logging
from nmt.service.engine import Engine
from nmt.service.server import bind, run_server


def serve(cfg: DictConfig) -> None:
    setup_logging()
    config: ServeConfig = OmegaConf.to_object(cfg)
    sock = bind(config.host, config.port)  # first: a taken port fails before seconds of loading
    run_server(sock, Engine.load(config.checkpoint, config.device, config.decode, config.attention_layer), config)


def main() -> None:
    run_stage("serve", serve)


if __name__ == "__main__":
    main()
