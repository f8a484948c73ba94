"""The sections of a run's settings, each setting declared once (`train.settings`): type, default,
choices, range and help. Each section checks what it can alone; `TrainConfig` puts them together."""

from __future__ import annotations

from dataclasses import dataclass, fields

from growclip.data.corpus import DEFAULT_STAGE_SIZES, NUM_STAGES
from growclip.growth.policy import parse_schedule
from growclip.growth.space import MIN_HEAD_DIM
from growclip.runtime import PRECISIONS, check_device_name
from growclip.train.settings import (
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    MOMENTUM,
    POSITIVE,
    SEED,
    Range,
    Section,
    flag_of,
    setting,
)

GROWTH_POLICIES = ("auto", "fixed", "schedule", "scratch", "frontier")


@dataclass(frozen=True)
class DataConfig(Section):
    """What a run reads (default: the embedded corpus) and how."""

    train_data: str | None = setting(None, "sources joined by '::': .csv/.tsv tables, image folders with .txt "
                                           "sidecars, webdataset shards like 'shards/{000..009}.tar'")
    val_data: str | None = setting(None, "held-out pairs (same kinds) for retrieval evaluation", free=True)
    zeroshot_data: str | None = setting(None, "labelled images for zero-shot evaluation: class folders, or a "
                                              "table with the image column (--csv-img-key) and 'label'",
                                        free=True)
    forgetting_data: str | None = setting(None, "labelled images the starting model already knows (as "
                                                "--zeroshot-data): their zero-shot top-1 when the run starts and "
                                                "at every evaluation; the drop is reported as forgetting",
                                          free=True)
    templates: str | None = setting(None, "zero-shot prompt templates, one per line with {} for the class",
                                    free=True)
    csv_separator: str | None = setting(None, "column separator of tables (default: ',' for .csv, tab otherwise)")
    csv_img_key: str = setting("filepath", "image path column of tables")
    csv_caption_key: str = setting("title", "caption column of tables")
    csv_label_key: str = setting("label", "class column of a --zeroshot-data table")
    tokenizer: str | None = setting(None, "a tokenizer.json to use (default: BPE trained on the captions)")
    crop_scale: tuple[float, float] | None = setting(None, "random-resized-crop area range for image files (not "
                                                           "the corpus): 0.9,1.0 = open_clip's, 1,1 = none; default: "
                                                           "open_clip's when the run passes over its data more than "
                                                           "once, none for one pass",
                                                     limits=Range(0, 1, low_open=True))
    stages: tuple[int, ...] | None = setting(None, "embedded-corpus stages to train on, e.g. 0,1 (default all)",
                                             limits=Range(0, NUM_STAGES - 1))
    stage_sizes: tuple[int, ...] = setting(DEFAULT_STAGE_SIZES, "pairs per corpus stage, e.g. 4000,8000,...",
                                           limits=AT_LEAST_1)
    corpus_seed: int = setting(0, "seed of the embedded corpus", limits=SEED)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop_scale is not None and self.crop_scale[0] > self.crop_scale[1]:
            raise ValueError(f"crop_scale (--crop-scale) must be min,max with min <= max, got {self.crop_scale}")
        if len(self.stage_sizes) != NUM_STAGES:
            raise ValueError(f"stage_sizes (--stage-sizes) needs {NUM_STAGES} sizes, one per corpus stage, "
                             f"got {self.stage_sizes}")


@dataclass(frozen=True)
class StreamConfig(Section):
    """A growing run: its chunks and how its model grows between them (`train.growing`)."""

    chunks: tuple[str, ...] | None = setting(None, "chunks in order: sources (as --train-data) or corpus:K; "
                                                   f"'corpus' = all {NUM_STAGES} corpus stages")
    watch: str | None = setting(None, "a folder where chunks appear during the run; a file END ends the stream")
    growth: str | None = setting(None, "with --chunks/--watch: auto = search (default); fixed = never grow; "
                                       "schedule = --grow-schedule; scratch = search, then retrain the chosen "
                                       "architecture from zero; frontier = grow toward the compute-optimal size "
                                       "(--frontier)", GROWTH_POLICIES)
    grow_schedule: tuple[str, ...] = setting((), "K:OP items, e.g. 1:width=128 2:shared_layers+2 "
                                                 "(--growth schedule)")
    frontier: str = setting("corpus", "the compute-optimal sizes --growth frontier grows toward: a JSON file of "
                                      "rungs, or 'corpus' (the embedded corpus's, measured)")
    momentum: float = setting(0.9, "PIM m of scheduled growth and of growth toward the frontier", limits=MOMENTUM)
    search_momenta: tuple[float, ...] = setting((0.9,), "PIM m values the search tries, e.g. 1,0.9",
                                                limits=MOMENTUM)
    replay: float | None = setting(None, "train on the new chunk plus REPLAY x its size of old pairs "
                                         "(default: all data so far)", limits=AT_LEAST_0)
    chunk_samples: int | None = setting(None, "training pairs per chunk (default: --epochs x the new chunk's size)",
                                        limits=AT_LEAST_1)
    chunk_tflop: tuple[float, ...] = setting((), "training compute per chunk in TFLOP, e.g. 0.6,1.8,10 (the last "
                                                 "repeats): the pairs follow from the model's size",
                                             limits=POSITIVE)
    params_per_pair: float = setting(20.0, "growth budget: parameters per training pair seen",
                                     limits=AT_LEAST_0)
    search_fraction: float = setting(0.1, "cap on the search's overhead (proxies that lose, and scoring) as a "
                                          "fraction of the chunk's compute", limits=FRACTION)
    min_head_dim: int = setting(MIN_HEAD_DIM, "growth space: heads double only while each keeps at least this "
                                              "many dims", limits=AT_LEAST_1)
    cost_weight: float = setting(0.05, "score penalty per doubling of training FLOPs per pair",
                                 limits=AT_LEAST_0)
    heldout: int = setting(256, "held-out pairs per chunk for scoring the search", limits=AT_LEAST_1)

    def __post_init__(self) -> None:
        """Stream settings without a stream would be silently ignored: refuse them instead."""
        super().__post_init__()
        if self.chunks and self.watch:
            raise ValueError("give either chunks or watch, not both")
        if not self.active:
            given = [flag_of(f) for f in fields(self) if getattr(self, f.name) != f.default]
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise ValueError(f"{', '.join(given)} {verb} only to a growing run: add --chunks (e.g. --chunks corpus "
                                 f"for the embedded corpus's {NUM_STAGES} stages, one chunk each) or --watch FOLDER")
            return
        if self.chunk_tflop and self.chunk_samples:
            raise ValueError("give --chunk-tflop or --chunk-samples, not both")
        if self.frontier != "corpus" and self.growth != "frontier":
            raise ValueError("--frontier applies only to --growth frontier")
        if (self.growth == "schedule") != bool(self.grow_schedule):
            raise ValueError("--growth schedule and --grow-schedule go together: give both or neither")
        parse_schedule(self.grow_schedule)
        if not self.search_momenta:
            raise ValueError("search_momenta (--search-momenta) needs at least one PIM m")

    @property
    def active(self) -> bool:
        """Chunks or a watched folder: the run is a growing run."""
        return bool(self.chunks or self.watch)


@dataclass(frozen=True)
class OptimConfig(Section):
    """How the model is optimized: batches, schedule, AdamW, precision, seed."""

    batch_size: int = setting(128, "pairs per micro-batch", limits=AT_LEAST_1)
    accum_freq: int = setting(1, "micro-batches per optimizer step (the loss sees all of them: exact)",
                              limits=AT_LEAST_1)
    epochs: float = setting(1.0, "passes over the training data; fractions allowed", limits=POSITIVE)
    samples: int | None = setting(None, "total training pairs; overrides --epochs", limits=AT_LEAST_1)
    lr: float = setting(1e-3, "peak learning rate", limits=POSITIVE)
    wd: float = setting(0.1, "AdamW weight decay on linear/conv weights", limits=AT_LEAST_0)
    beta1: float = setting(0.9, "AdamW beta1", limits=Range(0, 1, high_open=True))
    beta2: float = setting(0.98, "AdamW beta2", limits=Range(0, 1, high_open=True))
    eps: float = setting(1e-6, "AdamW epsilon", limits=POSITIVE)
    warmup: int = setting(100, "linear warm-up steps before the cosine decay", limits=AT_LEAST_0)
    grad_clip_norm: float | None = setting(1.0, "clip the global gradient norm", limits=POSITIVE)
    precision: str = setting("fp32", "bf16 / fp16 = autocast (fp16 with a loss scaler; for GPUs)",
                             PRECISIONS, free=True)
    seed: int = setting(0, "seed for init, shuffling and everything derived", limits=SEED)
    grad_checkpointing: bool = setting(False, "recompute each block's activations in the backward pass: "
                                              "less memory for about a third more compute", free=True)
    compile: bool = setting(False, "torch.compile the model for training (compiled again after each growth; "
                                   "a growth search's short proxies run eagerly)", free=True)
    max_nonfinite_steps: int = setting(5, "steps in a row with a non-finite loss or gradient (each skipped) "
                                          "before the run stops", free=True, limits=AT_LEAST_1)

    @property
    def process_batch(self) -> int:
        """Pairs one process takes for one optimizer step (its micro-batches together)."""
        return self.batch_size * self.accum_freq

    def step_samples(self, processes: int) -> int:
        """The global batch: pairs per optimizer step over `processes` data-parallel processes."""
        return self.process_batch * processes


@dataclass(frozen=True)
class RunConfig(Section):
    """Where the run lives and how it logs, saves and resumes."""

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
    report_to: str | None = setting(None, "also log TensorBoard scalars", ("tensorboard",), free=True)
    progress: bool = setting(True, "no tqdm progress bar", flag="--no-progress", free=True)
    resume_override: tuple[str, ...] = setting((), "settings allowed to differ from the resumed run's, e.g. "
                                                    "lr batch_size", free=True)
    overwrite: bool = setting(False, "replace the run already in --output: deletes its checkpoints, metrics and "
                                     "evaluation (nothing else in the folder)", free=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_device_name(self.device)  # not whether this machine has it: the run checks that
        if self.overwrite and self.resume:
            raise ValueError("give --resume to continue the run in --output, or --overwrite to replace it; not both")


@dataclass(frozen=True)
class EvalConfig(Section):
    """When and on how much the run is evaluated."""

    eval_every: int | None = setting(None, "steps between evaluations (one always runs at the end)", free=True,
                                     limits=AT_LEAST_1)
    eval_images_per_class: int = setting(40, "corpus zero-shot images per class", free=True, limits=AT_LEAST_1)
    retrieval_images: int = setting(500, "corpus retrieval images (3 captions each); the gallery is 10x, "
                                         "each stage's held-out loss uses as many pairs", free=True,
                                    limits=AT_LEAST_1)


SECTIONS = {"data": DataConfig, "stream": StreamConfig, "optim": OptimConfig, "run": RunConfig, "eval": EvalConfig}
