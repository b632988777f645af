"""Attention pictures: written with the pieces on the axes, at a size that follows the input."""

import pytest
import torch

from nmt.evaluation.plots import attention_heatmap

matplotlib = pytest.importorskip("matplotlib")


def test_heatmap_png_has_the_expected_size(tmp_path):
    from PIL import Image

    src = ["▁Ein", "▁Hund", "▁sieht", "▁die", "▁Katze", ".", "</s>"]
    tgt = ["▁A", "▁dog", "▁sees", "▁the", "▁cat", ".", "</s>"]
    weights = torch.softmax(torch.randn(len(tgt), len(src)), -1).numpy()
    path = tmp_path / "a.png"
    assert attention_heatmap(weights, src, tgt, path, "line 1")
    width, height = Image.open(path).size
    # figsize (max(4, 0.45 * cols + 2), max(3, 0.4 * rows + 1.5)) inches at 100 dpi
    assert (width, height) == (int(100 * max(4.0, 0.45 * 7 + 2)), int(100 * max(3.0, 0.4 * 7 + 1.5)))
    bigger = tmp_path / "b.png"
    attention_heatmap(torch.rand(20, 30).numpy(), [f"s{i}" for i in range(30)], [f"t{i}" for i in range(20)], bigger)
    assert Image.open(bigger).size == (int(100 * (0.45 * 30 + 2)), int(100 * (0.4 * 20 + 1.5)))


def test_translate_writes_attention_pictures(tmp_path, trained_run):
    from conftest import run_cli

    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "attention_dir=att",
                     "attention_count=2", "decode.beam_size=2", cwd=tmp_path,
                     stdin=b"\nA dog sees the cat.\nThe big man likes twenty-one books.\nA bird.\n")
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "att").iterdir()) == ["attention_2.png", "attention_3.png"]
