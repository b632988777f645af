"""The training stage: the loop, the optimizer, and the checks that span data, model and trainer."""

from dataclasses import dataclass, field

from omegaconf import MISSING

from nmt.choices import AverageUntil, Precision, Schedule
from nmt.config.checks import require
from nmt.config.data import DataConfig
from nmt.config.decode import DecodeConfig
from nmt.config.model import ModelConfig


@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 1
    max_steps: int = 0  # 0: no step limit
    max_epochs: int = 0  # 0: no epoch limit
    max_minutes: float = 0.0  # wall-clock budget; 0: none
    accumulate: int = 1  # micro-batches per optimizer step
    clip_norm: float = 1.0  # 0 disables clipping
    label_smoothing: float = 0.1
    # R-Drop (Liang et al. 2021; fairseq's --rdrop-alpha): each batch runs twice under different dropout
    # masks, and the loss adds alpha times half the symmetric KL between the two predictions to their
    # cross-entropies (training/loss.py). About twice an update's time and activation memory; 0: off.
    rdrop_alpha: float = 0.0
    # Plain updates before R-Drop starts: the first rdrop_from updates are plain, R-Drop's from step
    # rdrop_from on. R-Drop regularizes a model that has begun to overfit; early on it only halves the
    # updates per CPU minute.
    rdrop_from: int = 0
    # Word dropout: each source piece and target-history piece becomes <unk> with this probability
    # during training (training/word_dropout.py); 0: off.
    word_dropout: float = 0.0
    precision: Precision = Precision.auto
    compile: bool = False
    log_every: int = 50
    valid_every: int = 500  # steps between validations; also saves checkpoints
    valid_bleu: bool = True  # decoded with the run's `decode` settings (greedy by default: fast, ranks well)
    # Periodic checkpoints kept, the newest, and best.pt's average_last unless average_until=last; 0: all.
    keep_last: int = 5
    # When the run ends, checkpoints/average.pt is the mean of N step_N.pt, validated beside best.pt so
    # N can be chosen on validation (average_select, or rerun the finished run with another N); 0: no
    # average.
    average_last: int = 0
    # Which N: last, the newest; best, those ending at best.pt; auto, best once patience has run out,
    # else last.
    average_until: AverageUntil = AverageUntil.auto
    # Choose N on validation: average.pt is whichever of the averages of 1..average_last checkpoints
    # (every window ending at the same step) validates best, ties to the larger N. Each costs one
    # validation; every score is logged. The best N varies by how the run ended: 9 at patience and 4 at
    # 2,000 updates for the Multi30k GRU (docs/multi30k.md).
    average_select: bool = False
    patience: int = 0  # validations without BLEU improvement before stopping; 0: never
    threads: int = 0  # CPU threads for torch; 0: torch's default
    # Stop after this many consecutive non-finite losses instead of training on garbage.
    max_bad_steps: int = 20

    def __post_init__(self) -> None:
        require(self.log_every >= 1, "trainer.log_every", "must be at least 1")
        require(self.valid_every >= 1, "trainer.valid_every", "must be at least 1")
        require(self.accumulate >= 1, "trainer.accumulate", "must be at least 1")
        require(self.rdrop_alpha >= 0, "trainer.rdrop_alpha", "must be >= 0 (0: off)")
        require(self.rdrop_from >= 0, "trainer.rdrop_from", "must be >= 0 (0: from the first update)")
        require(self.rdrop_from == 0 or self.rdrop_alpha > 0, "trainer.rdrop_from",
                "is set but R-Drop is off; set trainer.rdrop_alpha too")
        require(0 <= self.word_dropout < 1, "trainer.word_dropout", "must be in [0, 1) (0: off)")
        require(self.average_last >= 0, "trainer.average_last", "must be >= 0 (0: no average)")
        require(self.average_last > 0 or not self.average_select, "trainer.average_select",
                "needs trainer.average_last, the most checkpoints to average")
        # Only kept checkpoints can be averaged.
        require(self.keep_last == 0 or self.average_last <= self.keep_last, "trainer.average_last",
                f"{self.average_last} exceeds trainer.keep_last={self.keep_last}; raise trainer.keep_last")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0
    # inverse_sqrt: linear warmup then lr * sqrt(warmup / step); constant: warmup then flat; cosine: warmup,
    # then down to zero at trainer.max_steps along half a cosine (for a fixed budget of updates).
    schedule: Schedule = Schedule.inverse_sqrt
    warmup_steps: int = 4000

    def __post_init__(self) -> None:
        require(self.lr > 0, "optim.lr", "must be > 0")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    name: str = MISSING
    run_dir: str = MISSING

    def __post_init__(self) -> None:
        d, positions = self.data, self.model.max_positions
        require(d.max_tokens > d.max_len, "data.max_tokens",
                f"must exceed data.max_len={d.max_len} so the longest kept pair fits in a batch")
        # A kept pair of max_len tokens plus its EOS (source) or BOS (target) must fit the model's positions.
        require(d.max_len < positions, "data.max_len",
                f"{d.max_len} is not below model.max_positions={positions} (one position is the EOS); "
                "lower data.max_len or raise model.max_positions")
        steps = self.trainer.max_steps
        require(self.optim.schedule is not Schedule.cosine or steps > self.optim.warmup_steps, "optim.schedule",
                f"cosine decays to zero at trainer.max_steps, which must exceed optim.warmup_steps="
                f"{self.optim.warmup_steps} (it is {steps}); set trainer.max_steps")
