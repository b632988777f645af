"""The engines that translate lines behind one interface (`base.LineTranslator`): a checkpoint
searched in PyTorch (`pytorch.Translator`), or a CTranslate2 export (`ct2.CT2Translator`).

    from nmt.backends import load_translator
    load_translator("runs/x/checkpoints/best.pt").translate(["A man rides a bike."])
"""

from pathlib import Path

from nmt.backends.base import LineTranslator
from nmt.backends.ct2 import CT2Translator
from nmt.backends.pytorch import Translator
from nmt.decoding.search import Hypothesis

__all__ = ["CT2Translator", "Hypothesis", "LineTranslator", "Translator", "load_translator"]


def load_translator(path: str | Path, device: str = "auto", quantize: bool = False) -> LineTranslator:
    """A checkpoint file gives a Translator; an export directory (python -m nmt.export) a CT2Translator.
    CTranslate2 itself is imported only when an export is loaded."""
    if Path(path).is_dir():
        return CT2Translator.from_directory(path, device, quantize)
    return Translator.from_checkpoint(path, device, quantize)
