"""`python -m nmt.translate checkpoint=PATH [input=FILE] [output=FILE]`: one output line per input line.
PATH is a checkpoint or a directory written by `python -m nmt.export`."""

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.backends import load_translator
from nmt.choices import DecodeQuantize
from nmt.cli import run_stage
from nmt.config import TranslateConfig
from nmt.decoding.glossary import line_constraints
from nmt.errors import NmtError
from nmt.evaluation.plots import write_attention_maps
from nmt.io import line_numbers, progress, read_lines, setup_logging, write_lines

log = logging.getLogger("nmt.translate")


def format_hypotheses(hyps, vocab, nbest: int) -> str:
    if nbest <= 1:
        return vocab.decode(hyps[0].tokens)
    # k tab-separated "translation<TAB>score" pairs keep one line per input.
    return "\t".join(f"{vocab.decode(h.tokens)}\t{h.score:.4f}" for h in hyps)


def _input_lines(config: TranslateConfig) -> list[str]:
    if config.input is not None and not Path(config.input).is_file():
        raise NmtError(f"input={config.input}: no such file")
    data = Path(config.input).read_bytes() if config.input is not None else sys.stdin.buffer.read()
    name = config.input or "stdin"
    lines, bad = read_lines(data, name, config.invalid_lines,
                            fix="convert the file to UTF-8 or pass invalid_lines=empty")
    if bad:
        log.warning("%s: line(s) %s are not valid UTF-8 and are translated as empty lines", name, line_numbers(bad))
    return lines


def translate(cfg: DictConfig) -> None:
    setup_logging()
    config: TranslateConfig = OmegaConf.to_object(cfg)
    lines = _input_lines(config)
    d = config.decode
    constraints = line_constraints(d, lines)
    translator = load_translator(config.checkpoint, config.device, quantize=d.quantize is DecodeQuantize.int8)
    with progress(total=len(lines), desc="translate", unit="sent", disable=config.input is None) as bar:
        hyps = translator.translate_hypotheses(
            lines, d, d.max_tokens, d.precision,
            attention_layer=config.attention_layer if config.attention_dir is not None else None, on_batch=bar.update,
            constraints=constraints)
    if config.attention_dir is not None:
        write_attention_maps(Path(config.attention_dir), lines, hyps, translator, config.attention_count)
    outputs = (format_hypotheses(h, translator.vocab, d.nbest) + "\n" for h in hyps)
    write_lines(outputs, config.output)


def main() -> None:
    run_stage("translate", translate)


if __name__ == "__main__":
    main()
