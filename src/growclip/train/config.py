"""Training settings, declared once: type, default, choices and help of each in one field.

The CLI builds its flags from these fields (`cli/train.py`), config files are checked against them,
and the Python API takes the dataclass itself; the library never sees argv. Checks that need
more than one setting run here, at the edge, before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from growclip.data.corpus import DEFAULT_STAGE_SIZES, NUM_STAGES
from growclip.growth.policy import parse_schedule
from growclip.growth.space import MIN_HEAD_DIM
from growclip.runtime import PRECISIONS, check_device_name

GROWTH_POLICIES = ("auto", "fixed", "schedule", "scratch")
CORPUS_SETTINGS = ("stages", "stage_sizes", "corpus_seed")  # read only when training on the corpus
FILE_SETTINGS = ("csv_separator", "csv_img_key", "csv_caption_key", "crop_scale")  # only by file sources
# groups of the help text; "stream" settings only mean something in a growing run
DATA, OPTIM, RUN, STREAM, EVAL = "data", "optimization", "run", "stream", "evaluation"
_ALLOWED_TYPES = {  # the annotation strings used below -> what a value may be
    "str": (str,), "str | None": (str, type(None)), "int": (int,), "int | None": (int, type(None)),
    "float": (int, float), "float | None": (int, float, type(None)), "bool": (bool,),
    "tuple[int, ...]": (tuple,), "tuple[int, ...] | None": (tuple, type(None)),
    "tuple[float, float] | None": (tuple, type(None)),
    "tuple[str, ...] | None": (tuple, type(None)), "tuple[str, ...]": (tuple,), "tuple[float, ...]": (tuple,),
}


@dataclass(frozen=True)
class Range:
    """The values a numeric setting (or each item of a tuple of numbers) may take; always finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        return above and (self.high is None or (value < self.high if self.high_open else value <= self.high))

    def describe(self) -> str:
        bounds = [f"{sign} {_number_text(limit)}" for sign, limit in
                  ((">" if self.low_open else ">=", self.low), ("<" if self.high_open else "<=", self.high))
                  if limit is not None]
        return " and ".join(["a finite number", *bounds]).replace(" and ", " ", 1)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


AT_LEAST_1, AT_LEAST_0, POSITIVE = Range(1), Range(0), Range(0, low_open=True)
FRACTION, MOMENTUM, SEED = Range(0, 1, True, True), Range(0, 1), Range(0, 2**32 - 1)  # NumPy's seeds are 32-bit


def setting(default: Any, help: str, group: str = RUN, choices: tuple[str, ...] | None = None,
            flag: str | None = None, free: bool = False, limits: Range | None = None) -> Any:
    """A dataclass field carrying its help text, help group, choices, (if not the usual) flag and, for
    numbers, the range of its values; `free`: may differ when a run resumes (where it is written, how
    it is logged or evaluated)."""
    return field(default=default, metadata={"help": help, "group": group, "choices": choices, "flag": flag,
                                            "free": free, "limits": limits})


def flag_of(f: Any) -> str:
    """The command-line flag of a TrainConfig field."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _check_value(f: Any, value: Any) -> None:
    """Settings from YAML/JSON arrive untyped, and flags parse `inf` and `nan` as numbers: say which
    setting is wrong, by its name and flag, before it fails deep inside or trains on nonsense."""
    allowed = _ALLOWED_TYPES[f.type]
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ValueError(f"setting {f.name} must be {f.type}, got {value!r}")
    limits = f.metadata["limits"]
    items = value if isinstance(value, tuple) else () if value is None else (value,)
    if limits is not None and not all(isinstance(v, int | float) and limits.admits(v) for v in items):
        what = "each item of " if isinstance(value, tuple) else ""
        raise ValueError(f"{what}{f.name} ({flag_of(f)}) must be {limits.describe()}, got {value!r}")


def _as_tuple(value: Any) -> Any:
    """JSON gives lists where the config has tuples."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


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
    model: str = setting("clip-small", "preset name (see `growclip train --list-models`) or a model config .json")
    # data (default: the embedded corpus)
    train_data: str | None = setting(None, "sources joined by '::': .csv/.tsv tables, image folders with .txt "
                                           "sidecars, webdataset shards like 'shards/{000..009}.tar'", DATA)
    val_data: str | None = setting(None, "held-out pairs (same kinds) for retrieval evaluation", DATA, free=True)
    zeroshot_data: str | None = setting(None, "labelled images for zero-shot evaluation: class folders, or a "
                                              "table with the image column (--csv-img-key) and 'label'", DATA,
                                        free=True)
    templates: str | None = setting(None, "zero-shot prompt templates, one per line with {} for the class", DATA,
                                    free=True)
    csv_separator: str | None = setting(None, "column separator of tables (default: ',' for .csv, tab otherwise)",
                                        DATA)
    csv_img_key: str = setting("filepath", "image path column of tables", DATA)
    csv_caption_key: str = setting("title", "caption column of tables", DATA)
    csv_label_key: str = setting("label", "class column of a --zeroshot-data table", DATA)
    tokenizer: str | None = setting(None, "a tokenizer.json to use (default: BPE trained on the captions)", DATA)
    crop_scale: tuple[float, float] | None = setting(None, "random-resized-crop area range for image files (not "
                                                           "the corpus): 0.9,1.0 = open_clip's, 1,1 = none; default: "
                                                           "open_clip's when the run passes over its data more than "
                                                           "once, none for one pass", DATA,
                                                     limits=Range(0, 1, low_open=True))
    stages: tuple[int, ...] | None = setting(None, "embedded-corpus stages to train on, e.g. 0,1 (default all)", DATA,
                                             limits=Range(0, NUM_STAGES - 1))
    stage_sizes: tuple[int, ...] = setting(DEFAULT_STAGE_SIZES, "pairs per corpus stage, e.g. 4000,8000,...", DATA,
                                           limits=AT_LEAST_1)
    corpus_seed: int = setting(0, "seed of the embedded corpus", DATA, limits=SEED)
    # a growing run on a stream of chunks (train.growing)
    chunks: tuple[str, ...] | None = setting(None, "chunks in order: sources (as --train-data) or corpus:K; "
                                                   f"'corpus' = all {NUM_STAGES} corpus stages", STREAM)
    watch: str | None = setting(None, "a folder where chunks appear during the run; a file END ends the stream",
                                STREAM)
    growth: str | None = setting(None, "with --chunks/--watch: auto = search (default); fixed = never grow; "
                                       "schedule = --grow-schedule; scratch = search, then retrain the chosen "
                                       "architecture from zero", STREAM, GROWTH_POLICIES)
    grow_schedule: tuple[str, ...] = setting((), "K:OP items, e.g. 1:width=128 2:shared_layers+2 "
                                                 "(--growth schedule)", STREAM)
    momentum: float = setting(0.9, "PIM m of scheduled growth", STREAM, limits=MOMENTUM)
    search_momenta: tuple[float, ...] = setting((0.9,), "PIM m values the search tries, e.g. 1,0.9", STREAM,
                                                limits=MOMENTUM)
    replay: float | None = setting(None, "train on the new chunk plus REPLAY x its size of old pairs "
                                         "(default: all data so far)", STREAM, limits=AT_LEAST_0)
    chunk_samples: int | None = setting(None, "training pairs per chunk (default: --epochs x the new chunk's size)",
                                        STREAM, limits=AT_LEAST_1)
    params_per_pair: float = setting(20.0, "growth budget: parameters per training pair seen", STREAM,
                                     limits=AT_LEAST_0)
    search_fraction: float = setting(0.1, "cap on the search's overhead (proxies that lose, and scoring) as a "
                                          "fraction of the chunk's compute", STREAM, limits=FRACTION)
    min_head_dim: int = setting(MIN_HEAD_DIM, "growth space: heads double only while each keeps at least this "
                                              "many dims", STREAM, limits=AT_LEAST_1)
    cost_weight: float = setting(0.05, "score penalty per doubling of training FLOPs per pair", STREAM,
                                 limits=AT_LEAST_0)
    heldout: int = setting(256, "held-out pairs per chunk for scoring the search", STREAM, limits=AT_LEAST_1)
    # optimization
    batch_size: int = setting(128, "pairs per micro-batch", OPTIM, limits=AT_LEAST_1)
    accum_freq: int = setting(1, "micro-batches per optimizer step (the loss sees all of them: exact)", OPTIM,
                              limits=AT_LEAST_1)
    epochs: float = setting(1.0, "passes over the training data; fractions allowed", OPTIM, limits=POSITIVE)
    samples: int | None = setting(None, "total training pairs; overrides --epochs", OPTIM, limits=AT_LEAST_1)
    lr: float = setting(1e-3, "peak learning rate", OPTIM, limits=POSITIVE)
    wd: float = setting(0.1, "AdamW weight decay on linear/conv weights", OPTIM, limits=AT_LEAST_0)
    beta1: float = setting(0.9, "AdamW beta1", OPTIM, limits=Range(0, 1, high_open=True))
    beta2: float = setting(0.98, "AdamW beta2", OPTIM, limits=Range(0, 1, high_open=True))
    eps: float = setting(1e-6, "AdamW epsilon", OPTIM, limits=POSITIVE)
    warmup: int = setting(100, "linear warm-up steps before the cosine decay", OPTIM, limits=AT_LEAST_0)
    grad_clip_norm: float | None = setting(1.0, "clip the global gradient norm", OPTIM, limits=POSITIVE)
    precision: str = setting("fp32", "bf16 / fp16 = autocast (fp16 with a loss scaler; for GPUs)", OPTIM,
                             PRECISIONS, free=True)
    seed: int = setting(0, "seed for init, shuffling and everything derived", OPTIM, limits=SEED)
    grad_checkpointing: bool = setting(False, "recompute each block's activations in the backward pass: "
                                              "less memory for about a third more compute", OPTIM, free=True)
    compile: bool = setting(False, "torch.compile the model for training (compiled again after each growth; "
                                   "a growth search's short proxies run eagerly)", OPTIM, free=True)
    max_nonfinite_steps: int = setting(5, "steps in a row with a non-finite loss or gradient (each skipped) "
                                          "before the run stops", OPTIM, free=True, limits=AT_LEAST_1)
    # run
    workers: int = setting(0, "DataLoader worker processes", free=True, limits=AT_LEAST_0)
    device: str = setting("auto", "auto, cpu, cuda, cuda:1, ...", free=True)
    output: str = setting("runs/growclip", "run folder: metrics.jsonl, checkpoints/, eval.json", free=True)
    log_every: int = setting(10, "steps between metric lines", free=True, limits=AT_LEAST_1)
    save_every: int | None = setting(None, "steps between checkpoints (one is always written at the end)", free=True,
                                     limits=AT_LEAST_1)
    save_every_minutes: float | None = setting(None, "minutes between checkpoints (with or instead of "
                                                     "--save-every)", free=True, limits=POSITIVE)
    keep_checkpoints: int = setting(3, "newest checkpoints kept; 0 keeps all", free=True, limits=AT_LEAST_0)
    resume: str | None = setting(None, "'latest' (newest checkpoint in --output, or a new run if none) "
                                       "or a checkpoint path", free=True)
    report_to: str | None = setting(None, "also log TensorBoard scalars", RUN, ("tensorboard",), free=True)
    progress: bool = setting(True, "no tqdm progress bar", RUN, flag="--no-progress", free=True)
    resume_override: tuple[str, ...] = setting((), "settings allowed to differ from the resumed run's, e.g. "
                                                    "lr batch_size", free=True)
    overwrite: bool = setting(False, "replace the run already in --output: deletes its checkpoints, metrics and "
                                     "evaluation (nothing else in the folder)", free=True)
    # evaluation
    eval_every: int | None = setting(None, "steps between evaluations (one always runs at the end)", EVAL, free=True,
                                     limits=AT_LEAST_1)
    eval_images_per_class: int = setting(40, "corpus zero-shot images per class", EVAL, free=True, limits=AT_LEAST_1)
    retrieval_images: int = setting(500, "corpus retrieval images (3 captions each); the gallery is 10x, "
                                         "each stage's held-out loss uses as many pairs", EVAL, free=True,
                                    limits=AT_LEAST_1)

    def __post_init__(self) -> None:
        self._check_types()
        for name in ("precision", "growth", "report_to"):
            choices = self.__dataclass_fields__[name].metadata["choices"]
            if getattr(self, name) not in (*choices, None):
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        self._check_numbers()
        self._check_stream()
        self._check_data_settings()
        check_device_name(self.device)  # not whether this machine has it: the run checks that
        if self.val_data and not (self.train_data or self.is_stream):
            raise ValueError("val_data needs train_data or a stream (the embedded corpus has its own retrieval split)")

    def _check_numbers(self) -> None:
        """What one setting's range cannot say (each range is checked with its type)."""
        if self.crop_scale is not None and self.crop_scale[0] > self.crop_scale[1]:
            raise ValueError(f"crop_scale (--crop-scale) must be min,max with min <= max, got {self.crop_scale}")
        if len(self.stage_sizes) != NUM_STAGES:
            raise ValueError(f"stage_sizes (--stage-sizes) needs {NUM_STAGES} sizes, one per corpus stage, "
                             f"got {self.stage_sizes}")
        if self.samples is not None and self.samples < self.process_batch:
            raise ValueError(f"samples ({self.samples}) is less than one optimizer step "
                             f"(batch_size x accum_freq = {self.process_batch})")
        if self.overwrite and self.resume:
            raise ValueError("give --resume to continue the run in --output, or --overwrite to replace it; not both")

    def _check_stream(self) -> None:
        """Stream settings without a stream would be silently ignored: refuse them instead."""
        if self.chunks and self.watch:
            raise ValueError("give either chunks or watch, not both")
        if not self.is_stream:
            given = [f.name for f in fields(self)
                     if f.metadata["group"] == STREAM and getattr(self, f.name) != f.default]
            if given:
                flags = ", ".join("--" + name.replace("_", "-") for name in given)
                verb = "applies" if len(given) == 1 else "apply"
                raise ValueError(f"{flags} {verb} only to a growing run: add --chunks (e.g. --chunks corpus for the "
                                 f"embedded corpus's {NUM_STAGES} stages, one chunk each) or --watch FOLDER")
            return
        if (self.growth == "schedule") != bool(self.grow_schedule):
            raise ValueError("--growth schedule and --grow-schedule go together: give both or neither")
        parse_schedule(self.grow_schedule)
        if not self.search_momenta:
            raise ValueError("search_momenta (--search-momenta) needs at least one PIM m")

    def _check_data_settings(self) -> None:
        """A fixed run reads either the corpus or `train_data`: the other's settings would do nothing."""
        if self.is_stream:
            return
        if self.train_data:
            unused, reads = self._changed(CORPUS_SETTINGS), "the embedded corpus, not --train-data"
        else:
            file_settings = FILE_SETTINGS if not self.zeroshot_data else ("crop_scale", "csv_caption_key")
            unused, reads = self._changed(file_settings), "--train-data (image files and tables), not the corpus"
        if unused:
            verb = "applies" if len(unused) == 1 else "apply"
            raise ValueError(f"{', '.join(unused)} {verb} only to {reads}: as given it would do nothing")

    def _changed(self, names: tuple[str, ...]) -> list[str]:
        """The flags of the settings among `names` that differ from their defaults."""
        known = {f.name: f for f in fields(self)}
        return [flag_of(known[name]) for name in names if getattr(self, name) != known[name].default]

    @property
    def is_stream(self) -> bool:
        return bool(self.chunks or self.watch)

    @property
    def process_batch(self) -> int:
        """Pairs one process takes for one optimizer step (its micro-batches together)."""
        return self.batch_size * self.accum_freq

    def step_samples(self, processes: int) -> int:
        """The global batch: pairs per optimizer step over `processes` data-parallel processes."""
        return self.process_batch * processes

    def _check_types(self) -> None:
        for field_ in fields(self):
            _check_value(field_, getattr(self, field_.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_resume(self, saved: dict[str, Any], checkpoint: Path) -> None:
        """Refuse to continue a run under settings that change its meaning (model, data, batch, seed,
        schedule, ...) unless `resume_override` names them; a changed batch size, say, would miscount
        the samples and the schedule. A checkpoint from another run folder starts a new run from its
        weights and state, under this run's settings."""
        if not checkpoint.resolve().is_relative_to(Path(self.output).resolve()):
            return
        unknown = sorted(set(self.resume_override) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"--resume-override: unknown settings {unknown}")
        current = self.to_dict()
        changed = [f"{f.name} {_as_tuple(saved[f.name])!r} -> {_as_tuple(current[f.name])!r}" for f in fields(self)
                   if not f.metadata["free"] and f.name in saved and f.name not in self.resume_override
                   and _as_tuple(saved[f.name]) != _as_tuple(current[f.name])]
        if changed:
            names = " ".join(c.split()[0] for c in changed)
            raise ValueError(f"--resume {checkpoint}: these settings differ from the run's: {'; '.join(changed)}. "
                             f"Give the run's values, or allow the change with --resume-override {names}")

    @classmethod
    def check_settings(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Names and types of some settings (from a file, say), lists made tuples; no cross-field checks."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known settings are {sorted(known)}")
        settings = {name: tuple(v) if known[name].type.startswith("tuple") and isinstance(v, list | tuple) else
                    _number(v) if known[name].type.startswith("float") else v for name, v in data.items()}
        for name, value in settings.items():
            _check_value(known[name], value)
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**cls.check_settings(data))
