"""Runs a stage as a Hydra app and turns user errors into one line on stderr and exit code 2."""

import os
import sys
from pathlib import Path
from typing import Callable

import hydra
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nmt.config import register_configs
from nmt.errors import NmtError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
# Hydra's own flags and sweeps are left to Hydra; they are not config keys to check.
_HYDRA_FLAGS = ("-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i")


def _config_error_line(error: Exception) -> str:
    """The most specific line of a Hydra/OmegaConf composition error, with the key it names."""
    cause = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    message = next((l for l in lines if not l.startswith(("full_key", "object_type", "reference_type"))), str(cause))
    key = getattr(cause, "full_key", None)
    if key and key not in message:
        message = f"{message} (key: {key})"
    hint = "; see the keys with --cfg job" if "not in" in message else ""
    return f"config error: {message}{hint}"


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """A stage's config as its command line would compose it, checked: every key known, every value
    of its type, every dataclass's own checks passed. Scripts and tests build configs this way too."""
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name=config_name, overrides=overrides)
    OmegaConf.to_object(cfg)
    return cfg


def _check_run_dir(cfg: DictConfig) -> None:
    """Hydra creates the run directory before our code runs; check it can."""
    if "run_dir" not in cfg:
        return
    try:
        Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NmtError(f"run_dir={cfg.run_dir}: cannot create it ({error.strerror}); choose a writable directory")


def run_stage(config_name: str, task: Callable[[DictConfig], None]) -> None:
    """Entry point of `python -m nmt.<stage>`: validate, then run `task` under Hydra."""
    register_configs()
    args = sys.argv[1:]
    if os.environ.get("RANK", "0") != "0":
        # Under torchrun only rank 0 writes; Hydra would otherwise save its files from every rank.
        sys.argv.append("hydra.output_subdir=null")
    if not any(a in _HYDRA_FLAGS or a.startswith("hydra") for a in args):
        try:
            cfg = compose_config(config_name, args)
        except (HydraException, OmegaConfBaseException) as error:
            print(_config_error_line(error), file=sys.stderr)
            sys.exit(2)
        except NmtError as error:  # a config's own check of its values (its __post_init__)
            print(f"config error: {error}", file=sys.stderr)
            sys.exit(2)
        try:
            _check_run_dir(cfg)
        except NmtError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    @hydra.main(version_base=None, config_path=CONFIG_DIR, config_name=config_name)
    def _main(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except NmtError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except OSError as error:  # the file system refused: a path the user gave, or a full disk
            where = f"{error.filename}: " if error.filename else ""
            print(f"error: {where}{error.strerror or error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    _main()
