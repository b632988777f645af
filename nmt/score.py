"""`python -m nmt.score checkpoint=PATH src=FILE tgt=FILE [output=FILE] [token_scores=true]`: how probable the
model finds each given translation. One line per line pair: `log_prob<TAB>score`, then with token_scores=true
a tab and each subword's log-probability separated by spaces, the EOS last. PATH is a checkpoint or a
directory written by `python -m nmt.export`."""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.backends import load_translator
from nmt.choices import DecodeQuantize
from nmt.cli import run_stage
from nmt.config import ScoreConfig
from nmt.decoding.search import Hypothesis
from nmt.errors import NmtError
from nmt.io import line_numbers, progress, read_lines, setup_logging, write_lines

log = logging.getLogger("nmt.score")


def format_score(hypothesis: Hypothesis | None, token_scores: bool) -> str:
    """An empty line for a pair that was not scored (a blank source, or a line that is not UTF-8)."""
    if hypothesis is None:
        return ""
    line = f"{hypothesis.log_prob:.4f}\t{hypothesis.score:.4f}"
    if token_scores:
        line += "\t" + " ".join(f"{lp:.4f}" for lp in hypothesis.token_log_probs)
    return line


def _read(key: str, path: str, config: ScoreConfig) -> tuple[list[str], list[int]]:
    if not Path(path).is_file():
        raise NmtError(f"{key}={path}: no such file")
    return read_lines(Path(path).read_bytes(), path, config.invalid_lines,
                      fix="convert the file to UTF-8 or pass invalid_lines=empty")


def score(cfg: DictConfig) -> None:
    setup_logging()
    config: ScoreConfig = OmegaConf.to_object(cfg)
    sources, bad_sources = _read("src", config.src, config)
    targets, bad_targets = _read("tgt", config.tgt, config)
    if len(sources) != len(targets):
        raise NmtError(f"src={config.src} has {len(sources)} lines and tgt={config.tgt} has {len(targets)}; "
                       "give one target line per source line")
    unreadable = set(bad_sources) | set(bad_targets)
    if unreadable:
        log.warning("line(s) %s are not valid UTF-8 in src or tgt; their pairs get empty lines",
                    line_numbers(sorted(unreadable)))
    pairs = [i for i in range(len(sources)) if i + 1 not in unreadable]
    d = config.decode
    translator = load_translator(config.checkpoint, config.device, quantize=d.quantize is DecodeQuantize.int8)
    with progress(total=len(pairs), desc="score", unit="pair") as bar:
        found = translator.score_lines([sources[i] for i in pairs], [targets[i] for i in pairs], d, d.max_tokens,
                                       d.precision, on_batch=bar.update)
    scores: list[Hypothesis | None] = [None] * len(sources)
    for i, hypothesis in zip(pairs, found):
        scores[i] = hypothesis
    outputs = (format_score(h, config.token_scores) + "\n" for h in scores)
    write_lines(outputs, config.output)


def main() -> None:
    run_stage("score", score)


if __name__ == "__main__":
    main()
