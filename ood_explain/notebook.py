"""Helpers behind the notebooks: fast mode, where runs live, and load-or-train with per-epoch test scores.

The notebooks stay thin: a parameter cell picks the settings, :func:`config` turns them into a
:class:`~ood_explain.experiments.RunConfig` whose run folder is named after those settings, and
:func:`load_or_run` trains only when that folder holds no finished run (an interrupted one resumes from
its checkpoint). While training, :class:`EpochTracker` scores a fixed subset of the test set after
selected epochs and writes ``epoch_scores.csv`` into the run folder: the data behind the epoch slider of
:class:`ood_explain.widgets.NormDashboard` and the ID-vs-OOD norm trajectories.

Environment variables: ``OOD_EXPLAIN_FAST=1`` selects fast mode (the ``smoke`` preset; CI sets it),
``OOD_EXPLAIN_RUNS`` overrides the runs folder (default ``<repo>/runs/notebooks``), ``OOD_EXPLAIN_DATA``
is the data folder (see :mod:`ood_explain.data`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data, scores
from .experiments import RunConfig, limit, pick_device, resolve, run_experiment
from .models import ContrastiveModel, build_model
from .train import autocast_dtype, load_checkpoint

TRACK_LIMIT = 300  # test images per side (ID, OOD) scored after tracked epochs
TRACK_VIEWS = 4  # random views for the ensemble scores of tracked epochs
TRACK_POINTS = 12  # about this many tracked epochs per run


def fast_mode() -> bool:
    """True when the environment variable ``OOD_EXPLAIN_FAST`` is set to 1/true/yes (CI sets it)."""
    return os.environ.get("OOD_EXPLAIN_FAST", "").strip().lower() in ("1", "true", "yes", "on")


def setup(threads: int | None = None, seed: int = 0) -> dict:
    """Prepare a notebook kernel: torch threads (`threads`, else $OOD_EXPLAIN_THREADS, else 1) and a
    seeded global RNG. Returns the settings it used, for the notebook to print.

    Why one thread by default: the notebooks train small models whose many tiny operations make
    multi-threaded PyTorch spin-wait when the cores are shared with another job; on 2 busy cores we
    measured one thread about 7x faster than two (digits, lite preset: 16 s vs 108 s). On an idle
    machine, set OOD_EXPLAIN_THREADS=2 (or more) to use more cores."""
    threads = int(threads or os.environ.get("OOD_EXPLAIN_THREADS") or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    return {"fast": fast_mode(), "preset": default_preset(), "threads": threads, "runs": str(runs_root()),
            "data": str(data.resolve_data_root())}


def default_preset() -> str:
    """``smoke`` in fast mode, ``lite`` otherwise (``paper`` is for GPUs and is always chosen by hand)."""
    return "smoke" if fast_mode() else "lite"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding pyproject.toml,
    else the working directory. Notebooks run inside notebooks/, so their runs land in the repository."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists():
            return folder
    return here


def runs_root() -> Path:
    """Where notebook runs live: $OOD_EXPLAIN_RUNS, else ``<repo>/runs/notebooks`` (git-ignored)."""
    return Path(os.environ.get("OOD_EXPLAIN_RUNS") or repo_root() / "runs" / "notebooks").expanduser()


def settings_key(config: RunConfig) -> str:
    """A short hash of every setting that changes the result (the output folder and device excluded)."""
    fields = dataclasses.asdict(resolve(config))
    for name in ("out", "device", "data_root", "download", "compile"):
        fields.pop(name, None)
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]


def config(method: str, normal_class: int = 0, dataset: str = "digits", preset: str | None = None,
           protocol: str = "one-vs-rest", oe: str | None = None, **overrides) -> RunConfig:
    """A RunConfig for the notebooks whose run folder is named after its settings:
    ``<runs>/<preset>/<dataset>-<protocol>/<method>[-<oe>][-<k>shot]/class-<c>-<hash>``.
    The same settings in two notebooks share one run; changing any setting gives a new folder."""
    preset = preset or default_preset()
    base = RunConfig(dataset=dataset, protocol=protocol, normal_class=normal_class, method=method,
                     oe=oe if method != "simclr" else None, preset=preset, **overrides)
    name = method + (f"-{oe.replace(':', '_').replace('/', '_')}" if base.oe else "")
    name += f"-{base.oe_shots}shot" if base.oe_shots else ""
    out = runs_root() / preset / f"{dataset}-{protocol}" / name / f"class-{normal_class}-{settings_key(base)}"
    return dataclasses.replace(base, out=str(out))


# ------------------------------------------------------------------------------------ tracked epochs


def tracked_epochs(epochs: int, points: int = TRACK_POINTS) -> list[int]:
    """About `points` epochs spread over 1..epochs, always including the first and the last."""
    every = max(1, round(epochs / points))
    return sorted({1, epochs, *range(every, epochs + 1, every)})


class EpochTracker:
    """The ``on_epoch_end`` callback of :func:`load_or_run`: after each tracked epoch, score a fixed
    subset of ID and OOD test images (and a training sample for the nearest-neighbour scores) and
    append one row per test image to ``epoch_scores.csv`` (columns epoch, index, is_id, label, scores)."""

    def __init__(self, config: RunConfig, limit_per_side: int = TRACK_LIMIT, views: int = TRACK_VIEWS) -> None:
        self.config = resolve(config)
        self.path = Path(self.config.out) / "epoch_scores.csv"
        self.epochs = set(tracked_epochs(self.config.epochs))
        self.views = min(views, self.config.views or 0)
        self.device = pick_device(self.config.device)
        c = self.config
        train_set = data.load_dataset(c.dataset, "train", c.data_root, c.download, c.image_size)
        test_set = data.load_dataset(c.dataset, "test", c.data_root, c.download, c.image_size)
        split = data.make_split(train_set, test_set, c.protocol, c.normal_class)
        id_test = limit(split.id_test, limit_per_side, self.config.seed)
        ood_test = limit(split.ood_test, limit_per_side, self.config.seed + 1)
        self.images = torch.cat([id_test.images, ood_test.images]).to(self.device)
        self.labels = torch.cat([id_test.labels, ood_test.labels]).numpy()
        self.is_id = np.concatenate([np.ones(len(id_test), int), np.zeros(len(ood_test), int)])
        self.train_images = limit(split.id_train, limit_per_side, self.config.seed + 2).images.to(self.device)
        self.dtype = autocast_dtype(self.config.precision, self.device, self.config.arch.startswith("resnet"))

    def score(self, model: ContrastiveModel) -> dict[str, np.ndarray]:
        """Every score of the tracked test images under `model` (leaves the model in eval mode)."""
        train = scores.extract_features(model, self.train_images, seed=self.config.seed, autocast=self.dtype)
        test = scores.extract_features(model, self.images, views=self.views, seed=self.config.seed,
                                       autocast=self.dtype)
        return scores.all_scores(test, train)

    def __call__(self, epoch: int, model: ContrastiveModel, row: dict | None = None) -> None:
        if epoch not in self.epochs:
            return
        table = pd.DataFrame({"epoch": epoch, "index": np.arange(len(self.is_id)), "is_id": self.is_id,
                              "label": self.labels, **self.score(model)})
        if self.path.exists():  # a resumed run: replace rows of epochs scored before the interruption
            previous = pd.read_csv(self.path)
            table = pd.concat([previous[previous["epoch"] != epoch], table])
        table.to_csv(self.path, index=False, float_format="%.6g")


# ------------------------------------------------------------------------------------------ load-or-run


@dataclass
class Run:
    """A finished run folder, loaded: settings, metrics, per-sample test scores, training history and
    (when tracked) the per-epoch scores of a test subset."""

    path: Path
    config: dict
    metrics: dict
    scores: pd.DataFrame
    history: pd.DataFrame
    epoch_scores: pd.DataFrame | None
    trained_now: bool = False

    @property
    def method(self) -> str:
        return self.config["run"]["method"]

    @property
    def normal_class(self) -> int:
        return int(self.config["run"]["normal_class"])

    @property
    def label(self) -> str:
        """e.g. ``oecl (OE photos)``: the method, with its OE source when it has one."""
        oe = self.config["run"].get("oe")
        shots = self.config["run"].get("oe_shots")
        if self.method in ("simclr", "self-oecl") or not oe:
            return self.method
        return f"{self.method} (OE {oe}{f', {shots}-shot' if shots else ''})"

    def split(self, score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ID scores, OOD scores) of one score column of scores.csv (default: the main score)."""
        column = score or self.metrics["score"]
        is_id = self.scores["is_id"].to_numpy().astype(bool)
        values = self.scores[column].to_numpy()
        return values[is_id], values[~is_id]

    def auroc(self, score: str | None = None) -> float:
        """AUROC of one score (default: the main score)."""
        return float(self.metrics["scores"][score or self.metrics["score"]]["auroc"])

    def epochs_table(self) -> pd.DataFrame:
        """Per-epoch scores: epoch_scores.csv when the run was tracked, else the final scores.csv as
        the last epoch (so a run made with the CLI still works in the dashboard)."""
        if self.epoch_scores is not None and len(self.epoch_scores):
            return self.epoch_scores
        table = self.scores.copy()
        table.insert(0, "epoch", int(self.metrics["epochs"]))
        return table

    def run_config(self) -> RunConfig:
        """The resolved RunConfig this run was made with."""
        fields = {k: v for k, v in self.config["run"].items() if k in RunConfig.__dataclass_fields__}
        return RunConfig(**fields)

    def model(self, device: str = "cpu") -> ContrastiveModel:
        """The trained model, loaded from checkpoint.pt (eval mode)."""
        config = self.run_config()
        state = load_checkpoint(self.path / "checkpoint.pt", device)
        channels = state["model"]["mean"].shape[1]
        mean, std = data.NORMALIZATION.get(config.dataset, (None, None))
        model = build_model(config.arch, channels, mean, std, with_classifier=config.method == "bce")
        model.load_state_dict(state["model"])
        return model.to(device).eval()


def is_finished(config: RunConfig) -> bool:
    """True when the run folder of `config` holds metrics.json."""
    return (Path(config.out) / "metrics.json").exists()


def load_run(path: str | Path, trained_now: bool = False) -> Run:
    """Load a finished run folder into a :class:`Run`."""
    path = Path(path)
    names = ("config.json", "metrics.json", "scores.csv", "history.csv")
    missing = [name for name in names if not (path / name).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a finished run folder: missing {', '.join(missing)}")
    epoch_file = path / "epoch_scores.csv"
    return Run(path, json.loads((path / "config.json").read_text()), json.loads((path / "metrics.json").read_text()),
               pd.read_csv(path / "scores.csv"), pd.read_csv(path / "history.csv"),
               pd.read_csv(epoch_file) if epoch_file.exists() else None, trained_now)


def load_or_run(config: RunConfig, track: bool = True, progress: bool = True, verbose: bool = True) -> Run:
    """Load the finished run of `config`, or train it first (resuming from a checkpoint when one
    exists). With `track`, the test subset is scored after about a dozen epochs (epoch_scores.csv)."""
    out = Path(config.out)
    if is_finished(config):
        run = load_run(out)
        if verbose:
            print(f"loaded  {run.label:<28} class {run.normal_class}: AUROC {run.auroc():.3f}  ({out.name})")
        return run
    started = time.perf_counter()
    resuming = (out / "checkpoint.pt").exists()
    tracker = EpochTracker(config) if track else None
    if resuming and tracker is not None and not (out / "epoch_scores.csv").exists():
        tracker = None  # an untracked run that was interrupted: finish it untracked
    run_experiment(config, progress=progress, on_epoch_end=tracker)
    run = load_run(out, trained_now=True)
    if verbose:
        verb = "resumed" if resuming else "trained"
        print(f"{verb} {run.label:<28} class {run.normal_class}: AUROC {run.auroc():.3f}  "
              f"({time.perf_counter() - started:.0f} s)")
    return run


def load_or_run_many(configs: list[RunConfig], **kwargs) -> list[Run]:
    """:func:`load_or_run` for each config, in order."""
    return [load_or_run(c, **kwargs) for c in configs]


# ----------------------------------------------------------------------------------------- summaries


def auroc_table(runs: list[Run], score_names: list[str] | None = None, percent: bool = True) -> pd.DataFrame:
    """One row per run (its label and class), one column per score: AUROC (in % by default, 1 decimal)."""
    rows = {}
    for run in runs:
        names = score_names or list(run.metrics["scores"])
        rows[(run.label, run.normal_class)] = {n: run.metrics["scores"][n]["auroc"] for n in names
                                               if n in run.metrics["scores"]}
    table = pd.DataFrame(rows).T
    table.index.names = ["run", "class"]
    return (table * 100).round(1) if percent else table


def norm_trajectories(run: Run, score: str = "norm") -> pd.DataFrame:
    """Per tracked epoch: mean of `score` (default ‖z‖) over ID and over OOD test images, and the AUROC."""
    from .metrics import auroc

    rows = []
    for epoch, part in run.epochs_table().groupby("epoch"):
        is_id = part["is_id"].to_numpy().astype(bool)
        values = part[score].to_numpy()
        rows.append({"epoch": epoch, "id_mean": values[is_id].mean(), "ood_mean": values[~is_id].mean(),
                     "auroc": auroc(values[is_id], values[~is_id])})
    return pd.DataFrame(rows)
