"""Every enumerated choice of the configuration, one Enum each: a misspelt value fails when the
config is composed, with one line naming the key and the allowed values. Values are the strings
the YAML files and command-line overrides use."""

from enum import Enum


class Source(Enum):
    """Where a corpus comes from; each kind is one class in nmt/data/sources.py."""

    builtin = "builtin"  # the generated grammar corpus
    text = "text"  # line-aligned files PREFIX.<lang>
    hf = "hf"  # a `datasets` dataset with a `translation: {lang: text}` feature, as wmt/wmt14
    hf_columns = "hf_columns"  # a `datasets` dataset with one text column per language, as bentrevett/multi30k


class SubwordModel(Enum):
    """sentencepiece's model types."""

    unigram = "unigram"
    bpe = "bpe"
    char = "char"
    word = "word"


class OutputLayer(Enum):
    linear = "linear"
    deep = "deep"


class LinearInit(Enum):
    """How a Transformer's projection matrices start (embeddings are always N(0, d_model^-1/2))."""

    torch = "torch"  # torch's nn.Linear default: uniform, bound 1/sqrt(fan_in), biases too
    # Xavier uniform, biases zero, as fairseq's Transformer (W^Q, W^K, W^V with gain 1/sqrt(2))
    xavier = "xavier"


class AverageUntil(Enum):
    """Which periodic checkpoint ends the window that trainer.average_last averages."""

    # best when validation has not improved for trainer.patience validations (the run patience
    # stops), last otherwise (a run bounded by updates, minutes or epochs)
    auto = "auto"
    last = "last"  # the newest: a run bounded by updates ends on its best-trained checkpoints
    # best.pt's (fairseq's --checkpoint-upper-bound): a run that patience stops ends `patience`
    # validations past its best, so its newest checkpoints are ones validation ranked lower
    best = "best"


class Schedule(Enum):
    inverse_sqrt = "inverse_sqrt"
    constant = "constant"
    cosine = "cosine"


class Precision(Enum):
    auto = "auto"  # bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class LengthNorm(Enum):
    gnmt = "gnmt"  # log P / ((5 + |Y|) / 6) ** alpha (Wu et al. 2016)
    average = "average"  # log P / |Y|
    power = "power"  # log P / |Y| ** alpha: CTranslate2's length_penalty=alpha, which Argos Translate decodes with
    none = "none"  # log P


class Sampling(Enum):
    """decode.sampling: search for the best translation (none), or draw one at random, token by token,
    from the model's distribution cut down to its most probable part (nmt/decoding/sampling.py)."""
    none = "none"  # greedy or beam search
    topk = "topk"  # from the decode.topk most probable tokens (Fan et al. 2018)
    topp = "topp"  # from the nucleus: the fewest tokens whose probabilities reach decode.topp (Holtzman et al. 2020)
    epsilon = "epsilon"  # from the tokens of probability at least decode.epsilon (Hewitt et al. 2022)


class InvalidLines(Enum):
    error = "error"  # stop, naming the lines
    empty = "empty"  # translate them as empty lines, so the output keeps one line per input line


class Quantization(Enum):
    """How an export stores its weights: CTranslate2's own types, chosen when exporting."""
    none = "none"  # float32, exactly the checkpoint's numbers
    int8 = "int8"
    int16 = "int16"
    float16 = "float16"


class Package(Enum):
    """What `python -m nmt.export` writes: the CTranslate2 directory itself, or that directory inside
    an Argos Translate package (nmt/backends/argos_package.py)."""
    none = "none"
    argos = "argos"  # output/translate-<src>_<tgt>-<version>.argosmodel, for Argos Translate and LibreTranslate


class DecodeQuantize(Enum):
    """int8: dynamic int8 matrix products at translation time (PyTorch's for a checkpoint,
    CTranslate2's for an export); none: the weights' own type."""
    none = "none"
    int8 = "int8"
