"""Training settings: `TrainConfig`, every setting of a run in its section (`train.sections`:
data, stream and growth, optimization, run and checkpoints, evaluation).

The CLI builds its flags from the declarations (`cli/train.py`), config files are checked against
them, and the Python API takes the dataclass itself; the library never sees argv. Each component is
handed the section it reads. Flat settings (a flat YAML/JSON file, `TrainConfig(lr=1e-3)`) are
routed to their sections; `to_dict()` gives them flat again, as runs have always saved them.
Checks that need settings of more than one section run here, at the edge, before any work starts.
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from growclip.train.sections import SECTIONS, DataConfig, EvalConfig, OptimConfig, RunConfig, StreamConfig
from growclip.train.settings import as_tuple, check_value, flag_of, parse_value, setting

CORPUS_SETTINGS = ("stages", "stage_sizes", "corpus_seed")  # read only when training on the corpus
FILE_SETTINGS = ("csv_separator", "csv_img_key", "csv_caption_key", "crop_scale")  # only by file sources


FIELD_SECTIONS = {f.name: name for name, section in SECTIONS.items() for f in fields(section)}


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Every setting of a run, by section; `model` names the architecture (a preset or a config file)."""

    model: str = setting("clip-small", "preset name (see `growclip train --list-models`) or a model config .json")
    data: DataConfig = field(default_factory=DataConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __init__(self, model: str = "clip-small", *, data: DataConfig | None = None, stream: StreamConfig | None = None,
                 optim: OptimConfig | None = None, run: RunConfig | None = None, eval: EvalConfig | None = None,
                 **settings: Any) -> None:
        """The sections given (their defaults otherwise), with flat `settings` (`lr=1e-3`) over them."""
        unknown = sorted(set(settings) - set(FIELD_SECTIONS))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known settings are {sorted(FIELD_SECTIONS)}")
        given = {"data": data, "stream": stream, "optim": optim, "run": run, "eval": eval}
        for name, section in SECTIONS.items():
            changes = {key: value for key, value in settings.items() if FIELD_SECTIONS[key] == name}
            base = given[name] if given[name] is not None else section()
            object.__setattr__(self, name, replace(base, **changes) if changes else base)
        object.__setattr__(self, "model", model)
        check_value(MODEL_FIELD, model)
        self._check_across_sections()

    def _check_across_sections(self) -> None:
        """What one section cannot check alone: settings that only mean something with others."""
        if self.optim.samples is not None and self.optim.samples < self.optim.process_batch:
            raise ValueError(f"samples ({self.optim.samples}) is less than one optimizer step "
                             f"(batch_size x accum_freq = {self.optim.process_batch})")
        if self.stream.active:
            return
        if self.data.val_data and not self.data.train_data:
            raise ValueError("val_data needs train_data or a stream (the embedded corpus has its own retrieval split)")
        if self.data.train_data:
            unused, reads = self._changed(CORPUS_SETTINGS), "the embedded corpus, not --train-data"
        else:
            labelled = self.data.zeroshot_data or self.data.forgetting_data  # read with the file settings
            file_settings = FILE_SETTINGS if not labelled else ("crop_scale", "csv_caption_key")
            unused, reads = self._changed(file_settings), "--train-data (image files and tables), not the corpus"
        if unused:
            verb = "applies" if len(unused) == 1 else "apply"
            raise ValueError(f"{', '.join(unused)} {verb} only to {reads}: as given it would do nothing")

    def _changed(self, names: tuple[str, ...]) -> list[str]:
        """The flags of the data settings among `names` that differ from their defaults."""
        known = {f.name: f for f in fields(DataConfig)}
        return [flag_of(known[name]) for name in names if getattr(self.data, name) != known[name].default]

    def to_dict(self) -> dict[str, Any]:
        """Flat, as runs save their settings and config files give them."""
        sections = (asdict(getattr(self, name)) for name in SECTIONS)
        return {"model": self.model, **{key: value for section in sections for key, value in section.items()}}

    def check_resume(self, saved: dict[str, Any], checkpoint: Path) -> None:
        """Refuse to continue a run under settings that change its meaning (model, data, batch, seed,
        schedule, ...) unless `resume_override` names them; a changed batch size, say, would miscount
        the samples and the schedule. A checkpoint from another run folder starts a new run from its
        weights and state, under this run's settings."""
        if not checkpoint.resolve().is_relative_to(Path(self.run.output).resolve()):
            return
        unknown = sorted(set(self.run.resume_override) - {f.name for f in setting_fields()})
        if unknown:
            raise ValueError(f"--resume-override: unknown settings {unknown}")
        current = self.to_dict()
        changed = [f"{f.name} {as_tuple(saved[f.name])!r} -> {as_tuple(current[f.name])!r}" for f in setting_fields()
                   if not f.metadata["free"] and f.name in saved and f.name not in self.run.resume_override
                   and as_tuple(saved[f.name]) != as_tuple(current[f.name])]
        if changed:
            names = " ".join(c.split()[0] for c in changed)
            raise ValueError(f"--resume {checkpoint}: these settings differ from the run's: {'; '.join(changed)}. "
                             f"Give the run's values, or allow the change with --resume-override {names}")

    @classmethod
    def check_settings(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Names and types of some flat settings (from a file, say), lists made tuples; no cross-field checks."""
        known = {f.name: f for f in setting_fields()}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known settings are {sorted(known)}")
        settings = {name: parse_value(known[name], value) for name, value in data.items()}
        for name, value in settings.items():
            check_value(known[name], value)
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From flat settings (a config file, a run's saved settings)."""
        return cls(**cls.check_settings(data))


MODEL_FIELD = next(f for f in fields(TrainConfig) if f.name == "model")


def setting_fields() -> list[Field]:
    """Every setting's declaration, `model` first, then section by section (the flags' order)."""
    return [MODEL_FIELD, *(f for section in SECTIONS.values() for f in fields(section))]


def section_of(name: str) -> str | None:
    """The section a setting is declared in (None for `model`)."""
    return FIELD_SECTIONS.get(name)
