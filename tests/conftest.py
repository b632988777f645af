import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch

from nmt.backends import LineTranslator
from nmt.choices import SubwordModel
from nmt.data.vocab import BOS_ID, EOS_ID, Vocab
from nmt.decoding.search import Hypothesis
from nmt.models.checkpoint import load_checkpoint
from nmt.models.gru_attention import GRUAttentionModel
from nmt.models.interface import DecoderState, Step
from nmt.models.transformer import TransformerModel

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_cli(stage: str, *overrides: str, cwd: Path, stdin: bytes | None = None, env: dict | None = None,
            timeout: float = 600, module: str | None = None) -> subprocess.CompletedProcess:
    """`python -m nmt.<stage> overrides...` in `cwd`, as a user would run it."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", module or f"nmt.{stage}", *overrides], cwd=cwd, input=stdin,
                          capture_output=True, env=environment, timeout=timeout)


def mean_of(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The reference mean of checkpoints' weights, for the averaging code to equal."""
    models = [load_checkpoint(p)["model"] for p in paths]
    return {key: torch.stack([m[key].double() for m in models]).mean(0).float() for key in models[0]}


@pytest.fixture
def gru_model() -> GRUAttentionModel:
    torch.manual_seed(0)
    return GRUAttentionModel(vocab_size=23, embed_dim=8, hidden_dim=12, dropout=0.0).eval()


@pytest.fixture
def transformer_model() -> TransformerModel:
    torch.manual_seed(0)
    return TransformerModel(vocab_size=23, d_model=16, encoder_layers=2, decoder_layers=2, heads=4, ffn_dim=32,
                            dropout=0.0, max_positions=64).eval()


@pytest.fixture(params=["gru", "transformer"])
def any_model(request, gru_model, transformer_model):
    return gru_model if request.param == "gru" else transformer_model


@pytest.fixture
def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Sources of different lengths (EOS=3, PAD=0) and teacher-forcing inputs (BOS=2)."""
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0], [11, 3, 0, 0, 0]])
    tgt_in = torch.tensor([[2, 12, 13, 14], [2, 15, 16, 0], [2, 17, 0, 0]])
    return src, tgt_in


TINY_DATA = ("data.builtin_sizes={train:400,valid:40,test:30}", "data.vocab_size=200")
TINY_TRAIN = (*TINY_DATA, "model.embed_dim=32", "model.hidden_dim=48", "trainer.max_steps=12",
              "trainer.valid_every=6", "trainer.log_every=3", "data.max_tokens=800", "trainer.threads=1")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A tiny GRU run on the built-in corpus, trained through the CLI; its directory."""
    work = tmp_path_factory.mktemp("run")
    result = run_cli("train", *TINY_TRAIN, "run_dir=run", cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return work / "run"


# Sentences for the service's tests: short and long, from the built-in corpus's words and not.
# The untrained tiny models write until their length limit; a short limit keeps decoding quick, and
# the CLI and the service get the same one, so their translations must still match.
SHORT_OUTPUTS = {"max_len_a": 0.5, "max_len_b": 6}
SHORT_OVERRIDES = tuple(f"decode.{key}={value}" for key, value in SHORT_OUTPUTS.items())
SERVE_LINES = ["the cat sees the dog .", "a small bird sings", "the old man reads a book in the garden .",
               "hello", "the dog", "two children play with a red ball near the river .", "she eats", "a"]


@pytest.fixture(scope="session")
def cli_translations(trained_run) -> dict[str, str]:
    """What `nmt.translate` writes for SERVE_LINES with the default decode settings and short outputs."""
    (trained_run / "serve_input.txt").write_text("\n".join(SERVE_LINES) + "\n")
    result = run_cli("translate", "checkpoint=checkpoints/best.pt", "input=serve_input.txt", *SHORT_OVERRIDES,
                     cwd=trained_run)
    assert result.returncode == 0, result.stderr.decode()
    return dict(zip(SERVE_LINES, result.stdout.decode().splitlines()))


@contextmanager
def serving(checkpoint: Path, *overrides: str, cwd: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m nmt.serve` on a free port with short outputs, as a user starts it; its process and base
    URL once it answers."""
    log = open(cwd / "serve.log", "w+b")
    process = subprocess.Popen([sys.executable, "-m", "nmt.serve", f"checkpoint={checkpoint}", "port=0",
                                *SHORT_OVERRIDES, *overrides],
                               cwd=cwd, stderr=log, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        url = _wait_until_serving(process, cwd / "serve.log")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _wait_until_serving(process: subprocess.Popen, log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        found = re.search(r"serving (http://\S+?)/ ", log.read_text())
        if found:
            try:
                urllib.request.urlopen(found.group(1) + "/health", timeout=5).read()
                return found.group(1)
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError("the service did not answer within a minute:\n" + log.read_text())


@pytest.fixture(scope="session")
def served(trained_run, tmp_path_factory) -> Iterator[str]:
    """The tiny GRU served on loopback for the whole session; its base URL."""
    with serving(trained_run / "checkpoints" / "best.pt", cwd=tmp_path_factory.mktemp("serve")) as (_, url):
        yield url


# A Transformer that has learned the built-in corpus well enough to end its outputs with EOS
# well before the length cap, so two decoders of it can be compared token for token.
TINY_TRANSFORMER = ("data.builtin_sizes={train:1000,valid:20,test:20}", "data.vocab_size=200",
                    "model=transformer_small", "model.d_model=64", "model.heads=4", "model.ffn_dim=128",
                    "model.encoder_layers=2", "model.decoder_layers=2", "model.dropout=0.0", "model.max_positions=128",
                    "data.max_len=100",
                    "trainer.max_steps=180", "trainer.valid_every=180", "trainer.valid_bleu=false",
                    "trainer.threads=1", "data.max_tokens=1200", "optim.lr=5e-3")


@pytest.fixture(scope="session", params=["pre_norm", "post_norm"])
def trained_transformer(request, tmp_path_factory) -> Path:
    """A tiny pre-norm or post-norm Transformer trained through the CLI; its best.pt."""
    work = tmp_path_factory.mktemp(request.param)
    cache = tmp_path_factory.getbasetemp() / "transformer_cache"  # both runs share the prepared data
    result = run_cli("train", *TINY_TRANSFORMER, f"model.pre_norm={request.param == 'pre_norm'}",
                     f"data.cache_dir={cache}", "run_dir=run", cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return work / "run" / "checkpoints" / "best.pt"


PRE_NORM_ONLY = pytest.mark.parametrize("trained_transformer", ["pre_norm"], indirect=True)


@pytest.fixture(scope="session")
def exported(trained_transformer, tmp_path_factory) -> Path:
    """trained_transformer exported to CTranslate2 (float32); its directory."""
    from nmt.backends.ct2_export import export_checkpoint

    return export_checkpoint(trained_transformer, tmp_path_factory.mktemp("export") / "ct2")


@pytest.fixture(scope="session")
def tiny_gru_checkpoint(tmp_path_factory) -> Path:
    """An untrained GRU saved in the checkpoint format with a real sentencepiece vocabulary."""
    from nmt.data.builtin import generate_pairs
    from nmt.data.vocab import train_vocab
    from nmt.models.checkpoint import FORMAT, save_checkpoint, vocab_tensor

    vocab = train_vocab([s for pair in generate_pairs(200, 1) for s in pair], 80, SubwordModel.unigram, 1.0, 1)
    torch.manual_seed(0)
    sizes = {"embed_dim": 8, "hidden_dim": 12}
    model = GRUAttentionModel(len(vocab), **sizes)
    path = tmp_path_factory.mktemp("gru") / "gru.pt"
    save_checkpoint(path, {"format": FORMAT, "model_kind": "gru_attention", "model_config": sizes,
                           "vocab": vocab_tensor(vocab.proto), "model": model.state_dict()})
    return path


class TableLM(torch.nn.Module):
    """Next-token log-probabilities looked up by step and previous token in a fixed table: a model
    whose every output sequence can be scored by hand."""

    max_positions = 64

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table  # (steps, prev, next) log-probabilities

    def encode(self, src):
        return DecoderState({}, {"step": torch.zeros(src.size(0), dtype=torch.long)})

    def decode_step(self, prev, state, attention_layer=None):
        step = state.per_hypothesis["step"]
        return Step(self.table[step, prev].clone(), DecoderState({}, {"step": step + 1}), None)

    def sequence_log_prob(self, tokens):
        prev, total = BOS_ID, 0.0
        for t, token in enumerate(tokens):
            total += self.table[t, prev, token].item()
            prev = token
        return total


class TinyLM(TableLM):
    """A random table over 8 steps; a negative `eos_bias` makes outputs longer."""

    def __init__(self, vocab: int, seed: int, eos_bias: float = 0.0):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(8, vocab, vocab, generator=g) * 2
        logits[:, :, EOS_ID] += eos_bias
        super().__init__(torch.log_softmax(logits, -1))


class WordByWord(LineTranslator):
    """A translator whose alignment is known by construction: each source word or punctuation mark
    becomes its entry in `words` (itself without one; capitalized when it is), an adjective moves behind
    the noun after it, and each target piece attends only to the first piece of the source word it came
    from. HTML placement can be checked against it by hand."""

    adjectives = frozenset({"black", "red", "old", "small"})

    def __init__(self, vocab: Vocab, words: dict[str, str]):
        self.vocab, self.words = vocab, words
        self.device, self.max_positions = torch.device("cpu"), 1024

    def translate_hypotheses(self, lines, settings, max_tokens=8000, precision=None, attention_layer=None,
                             on_batch=None, constraints=None) -> list[list[Hypothesis]]:
        return [[self._translate(line, attention_layer is not None) if line.strip() else Hypothesis([], 0.0, 0.0)]
                for line in lines]

    def _translate(self, line: str, need_attention: bool) -> Hypothesis:
        source = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", line)]
        order, i = list(range(len(source))), 0
        while i < len(source) - 1:
            word, after = line[slice(*source[i])], line[slice(*source[i + 1])]
            if word.lower() in self.adjectives and after.isalpha() and after.lower() not in self.adjectives:
                order[i], order[i + 1] = i + 1, i
                i += 1
            i += 1
        text, starts = "", []
        for i in order:
            word = line[slice(*source[i])]
            translated = self.words.get(word.lower(), word)
            translated = translated[0].upper() + translated[1:] if word[0].isupper() else translated
            text += "" if not text or translated in ".,!?;:" else " "
            starts.append(len(text))
            text += translated
        tokens, spans = self.vocab.encode([text])[0], self.vocab.spans(text)
        source_ids, source_spans = self.vocab.encode([line])[0], self.vocab.spans(line)
        attention = torch.zeros(len(tokens) + 1, len(source_ids) + 1)  # (target + EOS, source + EOS)
        attention[-1, -1] = 1.0
        for row, (begin, end) in enumerate(spans):
            while begin < end and text[begin] == " ":
                begin += 1
            word = max(j for j, start in enumerate(starts) if start <= begin) if begin >= starts[0] else 0
            first, last = source[order[word]]
            attention[row, next(k for k, (b, e) in enumerate(source_spans) if b < last and e > first)] = 1.0
        return Hypothesis(tokens, 0.0, 0.0, attention if need_attention else None)


WORDS = {"a": "ein", "the": "der", "black": "schwarz", "dog": "Hund", "runs": "rennt", "in": "in", "snow": "Schnee",
         "two": "zwei", "children": "Kinder", "play": "spielen", "with": "mit", "red": "rot", "ball": "Ball",
         "old": "alt", "man": "Mann", "reads": "liest", "cat": "Katze", "sees": "sieht", "small": "klein"}


@pytest.fixture(scope="session")
def word_by_word() -> WordByWord:
    """WordByWord over a sentencepiece vocabulary of the built-in corpus, with a few dozen words."""
    from nmt.data.builtin import generate_pairs
    from nmt.data.vocab import train_vocab

    vocab = train_vocab([s for pair in generate_pairs(300, 1) for s in pair], 200, SubwordModel.unigram, 1.0, 1)
    return WordByWord(vocab, WORDS)
