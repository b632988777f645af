"""A checkpoint's model searched by `nmt.decoding` in PyTorch."""

import warnings
from pathlib import Path
from typing import Callable

import torch

from nmt.backends.base import LineTranslator
from nmt.choices import Precision
from nmt.config.decode import SearchSettings
from nmt.data.vocab import Vocab
from nmt.decoding.constraints import Phrase
from nmt.decoding.scoring import score_corpus
from nmt.decoding.search import Hypothesis, search_corpus
from nmt.device import autocast, resolve_device, resolve_precision
from nmt.errors import NmtError
from nmt.models.checkpoint import load_checkpoint, load_model
from nmt.models.interface import EncoderDecoder


class Translator(LineTranslator):
    """A checkpoint's model, searched in PyTorch."""

    def __init__(self, model: EncoderDecoder, vocab: Vocab, device: torch.device):
        self.model, self.vocab, self.device = model.eval(), vocab, device

    @property
    def max_positions(self) -> int:
        return self.model.max_positions

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", quantize: bool = False) -> "Translator":
        """quantize: PyTorch's dynamic int8 for the linear and recurrent layers (CPU only)."""
        model, vocab = load_model(load_checkpoint(path))
        resolved = resolve_device(device)
        if quantize:
            if resolved.type != "cpu":
                raise NmtError(f"decode.quantize=int8 runs on the CPU only, not on device={device}; "
                               "pass device=cpu or decode.quantize=none")
            model = quantize_dynamic_int8(model.eval())
        return cls(model.to(resolved), vocab, resolved)

    def search_ids(self, sources: list[list[int]], settings: SearchSettings, max_tokens: int, precision: Precision,
                   attention_layer: int | None, on_batch: Callable[[int], None] | None,
                   constraints: list[list[Phrase]] | None = None) -> list[list[Hypothesis]]:
        with autocast(resolve_precision(precision, self.device), self.device):
            return search_corpus(self.model, sources, settings, max_tokens, self.device, attention_layer, on_batch,
                                 constraints)

    def score_ids(self, sources: list[list[int]], targets: list[list[int]], settings: SearchSettings,
                  max_tokens: int, precision: Precision,
                  on_batch: Callable[[int], None] | None) -> list[Hypothesis]:
        with autocast(resolve_precision(precision, self.device), self.device):
            return score_corpus(self.model, sources, targets, settings, max_tokens, self.device, on_batch)


def quantize_dynamic_int8(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch's dynamic int8 quantization: int8 weights, activations quantized per batch, for
    the linear and recurrent layers (both models' matrix products); CPU inference only."""
    with warnings.catch_warnings():
        # torch announces a move of quantized tensors to torchao; the API still works and the
        # notice would reach every translate run's stderr.
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear, torch.nn.GRU, torch.nn.GRUCell},
                                                      dtype=torch.qint8)
