"""Training settings: a frozen dataclass the CLI fills in at the edge; the library never sees argv."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from growclip.data.corpus import DEFAULT_STAGE_SIZES

PRECISIONS = ("fp32", "bf16")
GROWTH_POLICIES = ("auto", "fixed", "schedule", "scratch")
TUPLE_FIELDS = ("stages", "stage_sizes", "crop_scale", "chunks", "grow_schedule", "search_momenta")  # lists
_ALLOWED_TYPES = {  # the annotation strings used below -> what a value may be
    "str": (str,), "str | None": (str, type(None)), "int": (int,), "int | None": (int, type(None)),
    "float": (int, float), "float | None": (int, float, type(None)), "bool": (bool,),
    "tuple[int, ...]": (tuple,), "tuple[int, ...] | None": (tuple, type(None)), "tuple[float, float]": (tuple,),
    "tuple[str, ...] | None": (tuple, type(None)), "tuple[str, ...]": (tuple,), "tuple[float, ...]": (tuple,),
}


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Settings from YAML/JSON arrive untyped: say which one is wrong before it fails deep inside."""
    allowed = _ALLOWED_TYPES[annotation]
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ValueError(f"setting {name} must be {annotation}, got {value!r}")


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


@dataclass(frozen=True)
class TrainConfig:
    model: str = "clip-small"  # preset name or path to a model config JSON
    train_data: str | None = None  # sources joined by '::'; None = the embedded corpus
    val_data: str | None = None  # held-out pairs for retrieval (with train_data)
    zeroshot_data: str | None = None  # labelled images (class folders or path,label CSV) for zero-shot
    templates: str | None = None  # prompt templates file for zeroshot_data
    csv_separator: str | None = None  # None: comma for .csv, tab otherwise
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    tokenizer: str | None = None  # a tokenizer.json to use instead of training one on the captions
    crop_scale: tuple[float, float] = (0.9, 1.0)  # random-resized-crop area range for files (not the corpus)
    stages: tuple[int, ...] | None = None  # embedded-corpus stages to train on; None = all
    # A growing run on a stream of chunks (set `chunks` or `watch`; see train.growing)
    chunks: tuple[str, ...] | None = None  # chunk specs in order: sources, or "corpus:K"
    watch: str | None = None  # a folder that receives chunks while the run goes on
    growth: str = "auto"  # auto (search) | fixed | schedule | scratch
    grow_schedule: tuple[str, ...] = ()  # "K:OP" items: grow by OP before chunk K (growth=schedule)
    momentum: float = 0.9  # PIM m for scheduled growth
    search_momenta: tuple[float, ...] = (0.9,)  # the m values the search tries
    replay: float | None = None  # None: cumulative data; r: the new chunk plus r x its size of old pairs
    chunk_samples: int | None = None  # training pairs per chunk; default: epochs x the new chunk's size
    params_per_pair: float = 20.0  # growth budget: parameters per training pair seen
    search_fraction: float = 0.2  # proxy training budget, as a fraction of the chunk's training
    cost_weight: float = 0.05  # score penalty per doubling of training FLOPs per pair
    heldout: int = 256  # held-out pairs per chunk for scoring
    stage_sizes: tuple[int, ...] = DEFAULT_STAGE_SIZES
    corpus_seed: int = 0
    batch_size: int = 128
    accum_freq: int = 1  # micro-batches per optimizer step; the loss sees all of them (exact)
    epochs: float = 1.0  # passes over the data; fractions allowed (equal-compute comparisons)
    samples: int | None = None  # total training pairs; overrides epochs when set
    lr: float = 1e-3
    wd: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup: int = 100  # steps
    grad_clip_norm: float | None = 1.0
    precision: str = "fp32"
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    output: str = "runs/growclip"
    log_every: int = 10
    save_every: int | None = None  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept; 0 keeps all
    resume: str | None = None  # "latest" (newest in output; a fresh start if none) or a checkpoint path
    eval_every: int | None = None  # steps between evaluations (one always runs at the end)
    report_to: str | None = None  # "tensorboard" adds TensorBoard scalars to the JSONL metrics
    eval_images_per_class: int = 40
    retrieval_images: int = 500
    progress: bool = True

    def __post_init__(self) -> None:
        self._check_types()
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        for name in ("batch_size", "accum_freq", "log_every", "save_every", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be 0 (keep all) or more, got {self.keep_checkpoints}")
        if self.report_to not in (None, "", "tensorboard"):
            raise ValueError(f"report_to must be 'tensorboard' or empty, got {self.report_to!r}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must be two fractions 0 < min <= max <= 1, got {self.crop_scale}")
        if self.growth not in GROWTH_POLICIES:
            raise ValueError(f"growth must be one of {GROWTH_POLICIES}, got {self.growth!r}")
        if self.chunks and self.watch:
            raise ValueError("give either chunks or watch, not both")
        if not 0 <= self.momentum <= 1 or not all(0 <= m <= 1 for m in self.search_momenta):
            raise ValueError("PIM momenta must be in [0, 1]")
        if self.search_fraction <= 0 or self.params_per_pair < 0:
            raise ValueError("search_fraction must be positive and params_per_pair non-negative")
        if self.val_data and not (self.train_data or self.chunks or self.watch):
            raise ValueError("val_data needs train_data or a stream (the embedded corpus has its own retrieval split)")
        if self.samples is not None and self.samples < self.batch_size * self.accum_freq:
            raise ValueError(f"samples ({self.samples}) is less than one optimizer step "
                             f"(batch_size x accum_freq = {self.batch_size * self.accum_freq})")
        if self.lr <= 0 or self.warmup < 0 or self.workers < 0:
            raise ValueError("lr must be positive, warmup and workers non-negative")

    def _check_types(self) -> None:
        for field in fields(self):
            _check_type(field.name, field.type, getattr(self, field.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def check_settings(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Names and types of some settings (from a file, say), lists made tuples; no cross-field checks."""
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known settings are {sorted(types)}")
        settings = {name: tuple(v) if name in TUPLE_FIELDS and isinstance(v, list | tuple) else
                    _number(v) if types[name].startswith("float") else v for name, v in data.items()}
        for name, value in settings.items():
            _check_type(name, types[name], value)
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**cls.check_settings(data))
