"""`python -m nmt.prepare`: clean the corpus, train the joint vocabulary, encode and cache every split."""

import logging

from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage
from nmt.config import PrepareConfig
from nmt.data import prepare_from_config
from nmt.io import setup_logging


def prepare(cfg: DictConfig) -> None:
    setup_logging()
    config: PrepareConfig = OmegaConf.to_object(cfg)
    directory = prepare_from_config(config.data)
    logging.getLogger("nmt.prepare").info("stats: %s", directory / "stats.json")
    print(directory)


def main() -> None:
    run_stage("prepare", prepare)


if __name__ == "__main__":
    main()
