"""Checkpoints written by earlier versions keep translating exactly as they did.

The fixtures were trained and translated by main at e80bc19 (before the trainer, search
contract and config reshaping); their outputs were written by that version's `nmt.translate`.
"""

from pathlib import Path

import pytest
from conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("model", ["transformer", "gru"])
@pytest.mark.parametrize("decode,expected", [(("decode.beam_size=1",), "beam1"),
                                             (("decode.beam_size=5", "decode.nbest=3"), "nbest3")])
def test_a_checkpoint_from_before_the_reshaping_translates_identically(tmp_path, model, decode, expected):
    result = run_cli("translate", f"checkpoint={FIXTURES / f'old_main_{model}.pt'}",
                     f"input={FIXTURES / 'old_main_input.en'}", "output=out.de", *decode, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.de").read_text() == (FIXTURES / f"old_main_{model}.{expected}.de").read_text()
