"""The joint sentencepiece vocabulary shared by source and target, with fixed special ids."""

import io
from typing import Iterable, Sequence

import sentencepiece as spm

from nmt.choices import SubwordModel

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# What no translation of ours ever contains: search forbids them, and an Argos package's model cannot produce them.
NEVER_PRODUCED = (PAD_ID, BOS_ID, UNK_ID)


class Vocab:
    """A sentencepiece model held as bytes, so it travels inside checkpoints."""

    def __init__(self, model_proto: bytes):
        self.proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def from_file(cls, path: str) -> "Vocab":
        with open(path, "rb") as f:
            return cls(f.read())

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        return self._sp.encode(list(texts), num_threads=threads)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The characters of `text` each of its pieces (as `encode` cuts it) was read from, [begin, end):
        what lets markup on the text be matched with the pieces a model attended to."""
        proto = self._sp.encode(text, out_type="proto")
        char_at = [0] * (len(text.encode("utf-8")) + 1)  # sentencepiece counts UTF-8 bytes
        offset = 0
        for index, char in enumerate(text):
            width = len(char.encode("utf-8"))
            char_at[offset:offset + width] = [index] * width
            offset += width
        char_at[offset] = len(text)
        return [(char_at[piece.begin], char_at[piece.end]) for piece in proto.pieces]

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([i for i in ids if i > EOS_ID])

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._sp.id_to_piece(int(i)) for i in ids]

    def pieces_with_end(self, ids: Sequence[int]) -> list[str]:
        """The pieces a model read or wrote, ending with the EOS it reads after a source and writes
        after a target (shown as </s>): what attention rows and columns are labelled with."""
        return self.pieces([*ids, EOS_ID])


def train_vocab(sentences: Iterable[str], vocab_size: int, model_type: SubwordModel,
                character_coverage: float, threads: int) -> Vocab:
    """Train a joint model on `sentences` (already a sample of both sides)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
        model_type=model_type.value, character_coverage=character_coverage, num_threads=threads,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        # A small corpus may not support the requested size; take what it supports.
        hard_vocab_limit=False, minloglevel=2,
        # Our sample is already random; sentencepiece need not sample again.
        input_sentence_size=0, shuffle_input_sentence=False,
        max_sentence_length=8192,
    )
    return Vocab(model.getvalue())
