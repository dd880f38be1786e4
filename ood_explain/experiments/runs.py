"""Experiments end to end: presets, one run (train + score + write a run folder), sweeps over classes,
and the named paper tables of ``ood-explain reproduce``.

A run folder holds ``config.json``, ``history.csv``, ``checkpoint.pt``, ``scores.csv`` (one row per test
sample: is_id and every score) and ``metrics.json`` (the main score's metrics at the top, one block per
score under ``scores``). A run whose ``metrics.json`` exists is finished; one with only a checkpoint
resumes. A finished folder stands for a config only under the same settings: :func:`reusable`, the one
reuse rule every command goes through.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import torch

from ood_explain.core import data, methods, scores, training
from ood_explain.core.distributed import barrier, world
from ood_explain.core.metrics import ood_metrics
from ood_explain.core.models import ContrastiveModel, build_model
from ood_explain.core.training import TrainConfig, autocast_dtype, train

# A preset's batch counts contrastive instances per step (instances_per_batch); a run's batch_size counts ID
# images, as TrainConfig's and --batch-size do: resolve() converts with the method's rows_per_image
# (self-OECL: 64 instances = 32 images, each at 0° and 90°).
PRESETS: dict[str, dict] = {
    # seconds on a CPU: for tests and CI
    "smoke": dict(
        arch="small-cnn",
        epochs=2,
        instances_per_batch=32,
        max_steps_per_epoch=3,
        views=2,
        warmup_epochs=1,
        test_limit=300,
        train_eval_limit=300,
    ),
    # minutes on 2 CPU cores: 6 epochs of at most 25 steps (3,200 ID images an epoch at batch 128)
    "lite": dict(
        arch="small-cnn",
        epochs=6,
        instances_per_batch=128,
        max_steps_per_epoch=25,
        views=4,
        warmup_epochs=1,
        train_eval_limit=2000,
    ),
    # the official hyper-parameters (plain SGD, lr 0.1, batch 64, 1000 epochs, 32 test views), for GPUs
    "paper": dict(arch="resnet18-cifar", epochs=1000, instances_per_batch=64, views=32, warmup_epochs=50),
}
# Overrides where a dataset needs them: digits has ~120 training images per class.
DATASET_PRESETS: dict[tuple[str, str], dict] = {
    ("digits", "smoke"): dict(instances_per_batch=32),
    ("digits", "lite"): dict(epochs=60, instances_per_batch=64, warmup_epochs=3),
    ("digits", "paper"): dict(arch="small-cnn", instances_per_batch=64),
    ("imagefolder", "paper"): dict(arch="resnet18"),
}
LEAVE_ONE_OUT_PAPER_EPOCHS = 500


@dataclass
class RunConfig:
    """Everything that defines one run. Fields left as None are filled from the preset by :func:`resolve`."""

    dataset: str = "digits"
    protocol: str = "one-vs-rest"
    normal_class: int = 0
    method: str = methods.OECL.name
    oe: str | None = None
    oe_shots: int | None = None
    preset: str = "lite"
    seed: int = 0
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    device: str = "auto"
    out: str = "runs/run"
    arch: str | None = None
    epochs: int | None = None
    batch_size: int | None = None  # ID images per step (a preset counts instances: see PRESETS)
    max_steps_per_epoch: int | None = None
    warmup_epochs: int | None = None
    alpha: float = TrainConfig.alpha  # the optimisation defaults are TrainConfig's, written once there
    lr: float = TrainConfig.lr
    weight_decay: float = TrainConfig.weight_decay  # SGD's L2 penalty; 0 lets the norms grow as theory says
    views: int | None = None
    precision: str = "auto"
    compile: bool = False
    test_limit: int | None = None
    train_eval_limit: int | None = None
    method_params: dict | None = None  # the method's own hyper-parameters; resolve fills its defaults


# Settings that change neither the trained model nor its data: a run folder may be reused under other values.
# data_root is the exception for dataset "imagefolder", whose data root IS the dataset (:func:`model_settings`).
NOT_SHAPING = ("out", "device", "data_root", "download", "compile", "views", "test_limit", "train_eval_limit")
# Of those, the settings that change the scores (not the model): a finished folder is scored again under them.
EVALUATION = ("views", "test_limit", "train_eval_limit")


def resolve(config: RunConfig) -> RunConfig:
    """Validate names and fill unset fields from the preset (and the dataset's overrides). Settings the
    method ignores are cleared (an OE source for a method without external OE), so they are not recorded."""
    return resolve_with_method(config)[0]


def resolve_with_method(config: RunConfig) -> tuple[RunConfig, methods.Method]:
    """:func:`resolve`, and the method's record it looked up: a run resolves its method once, here."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    method = methods.get(config.method)
    if config.dataset not in data.DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {', '.join(data.DATASETS)}")
    if config.protocol not in data.PROTOCOLS:
        raise ValueError(f"unknown protocol {config.protocol!r}; choose one of {', '.join(data.PROTOCOLS)}")
    if method.external_oe and not config.oe:
        raise ValueError(f"method {config.method!r} needs an OE source: --oe DATASET, imagefolder:DIR or photos")
    defaults = dict(PRESETS[config.preset])
    defaults.update(DATASET_PRESETS.get((config.dataset, config.preset), {}))
    if config.preset == "paper" and config.protocol == "leave-one-out":
        defaults["epochs"] = LEAVE_ONE_OUT_PAPER_EPOCHS
    if config.epochs is not None and config.warmup_epochs is None and "warmup_epochs" in defaults:
        # A shorter (or longer) run keeps the preset's share of warm-up epochs (paper: 50 of 1000).
        defaults["warmup_epochs"] = round(defaults["warmup_epochs"] * config.epochs / defaults["epochs"])
    defaults["batch_size"] = method.images_per_batch(defaults.pop("instances_per_batch"))
    filled = {
        name: defaults[name]
        for name in defaults
        if name in RunConfig.__dataclass_fields__ and getattr(config, name) is None
    }
    if not method.external_oe:
        filled.update(oe=None, oe_shots=None)
    filled["method_params"] = methods.resolve_params(method, config.method_params) or None
    return dataclasses.replace(config, **filled), method


def train_config(config: RunConfig, method: methods.Method | None = None) -> TrainConfig:
    """The optimisation settings of a resolved run (`method`: its record, when the caller has it)."""
    # resolve() fills these from the preset: every preset sets them
    assert config.epochs is not None and config.batch_size is not None and config.warmup_epochs is not None
    return TrainConfig(
        method=config.method,
        resolved=method,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        alpha=config.alpha,
        warmup_epochs=config.warmup_epochs,
        seed=config.seed,
        precision=config.precision,
        compile=config.compile,
        max_steps_per_epoch=config.max_steps_per_epoch,
        method_params=dict(config.method_params or {}),
    )


def pick_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU. A bare "cuda" means the current GPU (under torchrun: GPU
    LOCAL_RANK, made current by :func:`ood_explain.core.distributed.setup`)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------- config -> data, model


def limit(imageset: data.ImageSet, count: int | None, seed: int) -> data.ImageSet:
    """A seeded random subset of at most `count` images (all of them when count is None)."""
    if count is None or len(imageset) <= count:
        return imageset
    index = torch.randperm(len(imageset), generator=torch.Generator().manual_seed(seed))[:count]
    return imageset.subset(torch.sort(index).values)


@dataclass
class EvaluationSets:
    """The images a run is scored on: ID and OOD test images and a sample of ID training images (for the
    nearest-neighbour scores)."""

    id_test: data.ImageSet
    ood_test: data.ImageSet
    train_sample: data.ImageSet

    def test_images(self) -> torch.Tensor:
        """uint8 (N_id + N_ood, C, H, W): ID test images first."""
        return torch.cat([self.id_test.images, self.ood_test.images])

    def is_id(self) -> np.ndarray:
        """bool (N_id + N_ood,): True for the ID test images."""
        return np.concatenate([np.ones(len(self.id_test), bool), np.zeros(len(self.ood_test), bool)])

    def labels(self) -> np.ndarray:
        return torch.cat([self.id_test.labels, self.ood_test.labels]).numpy()


def evaluation_sets(split: data.Split, per_side: int | None, train_sample: int | None, seed: int) -> EvaluationSets:
    """Seeded subsets of at most `per_side` ID and OOD test images and `train_sample` training images.
    The one place of the seed offsets: every caller with the same arguments scores the same images."""
    return EvaluationSets(
        limit(split.id_test, per_side, seed),
        limit(split.ood_test, per_side, seed + 1),
        limit(split.id_train, train_sample, seed + 2),
    )


@dataclass
class RunData:
    """A run's data: the protocol split, the OE set (None for methods without external OE) and the
    evaluation sets."""

    split: data.Split
    oe: data.ImageSet | None
    evaluation: EvaluationSets

    def record(self) -> dict:
        """What config.json says about the data."""
        split, oe = self.split, self.oe
        return {
            "dataset": split.id_train.name,
            "id_train": len(split.id_train),
            "id_test": len(split.id_test),
            "ood_test": len(split.ood_test),
            "oe": oe.name if oe is not None else None,
            "oe_images": len(oe) if oe is not None else 0,
            **split.id_train.notes,
            **(oe.notes if oe is not None else {}),
        }


def load_split(config: RunConfig) -> tuple[data.Split, data.ImageSet]:
    """(the protocol split, the whole training set) of a resolved config. Raises when a test side is empty."""
    train_set = data.load_dataset(config.dataset, "train", config.data_root, config.download, config.image_size)
    test_set = data.load_dataset(config.dataset, "test", config.data_root, config.download, config.image_size)
    split = data.make_split(train_set, test_set, config.protocol, config.normal_class)
    for side, images in (("ID", split.id_test), ("OOD", split.ood_test)):
        if len(images) == 0:
            raise ValueError(
                f"{config.dataset} class {class_name(split.id_train.classes, config.normal_class)} "
                f"({config.protocol}) has no {side} test images in the test split{_where(config)}: "
                f"pick another class or add test images"
            )
    return split, train_set


def load_data(config: RunConfig, method: methods.Method | None = None) -> RunData:
    """Load the split, the OE set and the evaluation sets of a resolved config (`method`: its record, when the
    caller has it). Raises before any training when a test side is empty."""
    split, train_set = load_split(config)
    oe = None
    if methods.record(method or config.method).external_oe:
        outliers = train_set.subset(~torch.isin(train_set.labels, split.id_train.labels.unique()))
        assert config.oe is not None  # resolve() refuses a method with external OE and no OE source
        oe = data.load_oe(
            config.oe,
            split.id_train,
            config.data_root,
            config.download,
            config.oe_shots,
            config.seed,
            outlier_classes=outliers,
        )
    return RunData(split, oe, evaluation_sets(split, config.test_limit, config.train_eval_limit, config.seed))


def class_name(classes: list[str], index: int) -> str:
    """A class as the user knows it: ``2 ('cow')`` when the class has a name other than its index."""
    name = classes[index] if 0 <= index < len(classes) else None
    return f"{index} ({name!r})" if name is not None and name != str(index) else str(index)


def _where(config: RunConfig) -> str:
    return f" of {config.data_root}" if config.data_root else ""


def make_model(config: RunConfig, in_channels: int, method: methods.Method | None = None) -> ContrastiveModel:
    """The untrained model of a resolved config: its architecture, the dataset's input normalization, and a
    classifier when the method (`method`: its record, when the caller has it) has one."""
    mean, std = data.NORMALIZATION.get(config.dataset, (None, None))
    assert config.arch is not None  # resolve() fills it from the preset: every preset sets it
    return build_model(
        config.arch, in_channels, mean, std, with_classifier=methods.record(method or config.method).classifier
    )


# ------------------------------------------------------------------------------------------- scoring


def score_table(
    model: ContrastiveModel,
    evaluation: EvaluationSets,
    method: str | methods.Method,
    views: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> pd.DataFrame:
    """Per-sample scores, a pure function of (model, images, views): one row per test image with is_id,
    label and one column per score (higher = more ID). ID test images come first. `device`: where to score
    (default: where the model is; the model is moved there)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = autocast_dtype(precision, device, model.is_resnet)
    model.to(device)
    train = scores.extract_features(model, evaluation.train_sample.images.to(device), seed=seed, autocast=dtype)
    test = scores.extract_features(model, evaluation.test_images().to(device), views=views, seed=seed, autocast=dtype)
    values = scores.all_scores(test, train, methods.record(method).own_scores)
    return pd.DataFrame({"is_id": evaluation.is_id().astype(int), "label": evaluation.labels(), **values})


def id_and_ood(table: pd.DataFrame, score: str) -> tuple[np.ndarray, np.ndarray]:
    """(ID values, OOD values) of one score column of a per-sample table; an unknown score is a ValueError
    listing the table's scores."""
    if score not in table.columns or score in ("is_id", "label"):
        have = ", ".join(c for c in table.columns if c not in ("is_id", "label"))
        raise ValueError(f"no score {score!r} in this table; its scores are {have}")
    is_id = table["is_id"].to_numpy().astype(bool)
    values = table[score].to_numpy()
    return values[is_id], values[~is_id]


def metrics_of(table: pd.DataFrame, method: str | methods.Method) -> dict:
    """The main score's name and metrics at the top level, every score's metrics under ``scores``."""
    names = [c for c in table.columns if c not in ("is_id", "label")]
    per_score = {name: ood_metrics(*id_and_ood(table, name)) for name in names}
    main = methods.record(method).judged_by(per_score)
    return {"score": main, **per_score[main], "scores": per_score}


# -------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    """One experiment: its resolved config, per-sample test scores, training history and metrics, the data
    it used (``data_record``), and the model (loaded from the folder's checkpoint when first asked for).
    ``epoch_scores``: per-epoch scores of a test subset, when the run was tracked (notebooks)."""

    config: RunConfig
    scores: pd.DataFrame
    history: pd.DataFrame
    metrics: dict
    data_record: dict = field(default_factory=dict)
    path: Path | None = None
    epoch_scores: pd.DataFrame | None = None
    trained_now: bool = False
    _model: ContrastiveModel | None = field(default=None, repr=False)

    @property
    def model(self) -> ContrastiveModel:
        """The trained model (eval mode, CPU when loaded from a folder)."""
        if self._model is None:
            if self.path is None:
                raise ValueError("this run holds no model and has no folder to load one from")
            state = training.load_checkpoint(self.path / "checkpoint.pt", "cpu")
            model = make_model(self.config, state["model"]["mean"].shape[1])
            model.load_state_dict(state["model"])
            self._model = model
        return self._model.eval()

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def normal_class(self) -> int:
        return self.config.normal_class

    @property
    def label(self) -> str:
        """e.g. ``oecl (OE photos)``: the method, with its OE source when it has one and its weight decay
        when it is not the default."""
        details = []
        if self.config.oe:
            details.append(f"OE {self.config.oe}" + (f", {self.config.oe_shots}-shot" if self.config.oe_shots else ""))
        if self.config.weight_decay != RunConfig.weight_decay:
            details.append(f"weight decay {self.config.weight_decay:g}")
        return f"{self.method} ({'; '.join(details)})" if details else self.method

    def split(self, score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ID scores, OOD scores) of one score (default: the main score)."""
        return id_and_ood(self.scores, score or self.metrics["score"])

    def auroc(self, score: str | None = None) -> float:
        """AUROC of one score on the full test set (default: the main score)."""
        return float(self.metrics["scores"][score or self.metrics["score"]]["auroc"])

    def epochs_table(self) -> pd.DataFrame:
        """Per-epoch scores: the tracked subset when there is one, else the final scores as the last epoch."""
        if self.epoch_scores is not None and len(self.epoch_scores):
            return self.epoch_scores
        table = self.scores.copy()
        table.insert(0, "epoch", int(self.metrics["epochs"]))
        return table

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """A finished run folder (its ``metrics.json``, the finished marker, is written last)."""
        path = Path(path)
        missing = [name for name in RESULT_FILES if not (path / name).exists()]
        if missing:
            raise FileNotFoundError(f"{path} is not a finished run folder: missing {', '.join(missing)}")
        record = read_record(path)
        methods.get(record["run"].get("method", ""), source=record.get("plugin"))  # a plugin's method: import it
        metrics = _read_json(path / "metrics.json")
        if (
            not isinstance(metrics.get("scores"), dict)
            or metrics.get("score") not in metrics["scores"]
            or "auroc" not in metrics
        ):
            raise ValueError(
                f"{path / 'metrics.json'} is not the metrics of an ood-explain run (no main 'score' "
                "among its 'scores'): was the folder made by another tool? Point at a run folder "
                "that ood-explain run or sweep wrote"
            )
        epoch_file = path / "epoch_scores.csv"
        return cls(
            recorded_config(record),
            pd.read_csv(path / "scores.csv"),
            pd.read_csv(path / "history.csv"),
            metrics,
            record.get("data", {}),
            path,
            pd.read_csv(epoch_file) if epoch_file.exists() else None,
        )


# config.json first, metrics.json (the finished marker) last
RESULT_FILES = ("config.json", "history.csv", "scores.csv", "metrics.json")
FOLDER_FILES = RESULT_FILES + ("checkpoint.pt", "epoch_scores.csv", "report.html")


def is_finished(folder: str | Path) -> bool:
    """True when the run folder holds its finished marker (metrics.json)."""
    return (Path(folder) / "metrics.json").exists()


def model_settings(config: RunConfig) -> dict:
    """The settings of a resolved config that shape the trained model or its data (JSON-comparable). For
    dataset ``imagefolder`` they include ``data_root``, as an absolute path: that folder is the dataset."""
    settings = {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(config))).items() if k not in NOT_SHAPING}
    if not settings.get("method_params"):  # a method without hyper-parameters of its own: as before they existed
        settings.pop("method_params", None)
    if config.dataset == "imagefolder":
        settings["data_root"] = os.path.abspath(data.resolve_data_root(config.data_root))
    return settings


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}): was the folder made by another tool? Point at an "
            "ood-explain run folder, or delete the file"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{path} holds a JSON {type(value).__name__}, not an ood-explain record: was the folder "
            "made by another tool?"
        )
    return value


def read_record(folder: str | Path) -> dict:
    """A run folder's config.json, checked to be one that :func:`run_experiment` wrote (a ``run`` block);
    another tool's file is a one-line ValueError naming it."""
    path = Path(folder) / "config.json"
    record = _read_json(path)
    if not isinstance(record.get("run"), dict):
        raise ValueError(
            f"{path} has no 'run' block, so {Path(folder)} is not an ood-explain run folder (made by "
            "another tool?): point at a folder that ood-explain run or sweep wrote, or use a new --out"
        )
    return record


def recorded_config(record: dict) -> RunConfig:
    """The RunConfig a config.json record holds; fields an older version did not record take their defaults."""
    return RunConfig(**{k: v for k, v in record["run"].items() if k in RunConfig.__dataclass_fields__})


def recorded_settings(record: dict) -> dict:
    """The model-shaping settings a config.json record holds (:func:`model_settings` as written then; an
    older record without that block: computed from its ``run`` block)."""
    settings = record.get("settings")
    return settings if isinstance(settings, dict) else model_settings(recorded_config(record))


def reusable(config: RunConfig) -> bool:
    """THE reuse rule, the one place that decides whether a finished run folder can stand for `config`.
    ``run`` (also with ``--seeds``), ``sweep``, ``reproduce``, ``quickstart``, the notebooks' load-or-train and
    ``claims`` all ask it before they skip a run.

    Returns True when ``config.out`` holds a finished run (metrics.json) whose config.json records the same
    result-shaping settings as `config` (resolved here): every setting that shapes the model or its data
    (:func:`model_settings`: dataset, protocol, class, method, OE source and shots, architecture, image size,
    seed, training settings; an image folder's data root) and the evaluation settings (views, test_limit,
    train_eval_limit). Returns False when there is no finished run, or when only evaluation settings differ:
    :func:`run_experiment` then resumes from the checkpoint, trains nothing and scores again. Raises
    ValueError, before anything is written, naming each differing model-shaping setting in one line
    ("lr: 0.1 in the folder, 0.01 now. Use a new --out folder, or --restart ..."), and for a folder another
    tool made."""
    config = resolve(config)
    out = Path(config.out)
    if not is_finished(out):
        return False
    record = refuse_other_folder_settings(out, config)
    run = record["run"]
    return all(run.get(name) == getattr(config, name) for name in EVALUATION)


def refuse_other_folder_settings(out: Path, config: RunConfig) -> dict:
    """Raise when the run folder `out` (its config.json) was made under model-shaping settings other than
    those of the resolved `config`; returns its record otherwise."""
    record = read_record(out)
    differing = training.setting_differences(recorded_settings(record), model_settings(config), "folder")
    if differing:
        raise ValueError(
            f"run folder {out} holds a finished run made with other settings ({'; '.join(differing)})."
            " Use a new --out folder, or --restart to train it again."
        )
    return record


class RunFolderInUse(RuntimeError):
    """Another live process is writing this run folder."""


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold an operating-system lock on ``out/.lock`` while writing the folder (``filelock``: released by
    the kernel when the process ends, so a crashed run never leaves the folder locked). The file records
    the holder's PID; a folder locked by another process is a :class:`RunFolderInUse` error naming it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    lock = filelock.FileLock(path, timeout=0, on_acquired=_record_pid)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = path.read_text().strip() or "?"
        raise RunFolderInUse(f"run folder {out} is in use by PID {holder}; wait for it, or use another --out") from None
    try:
        yield
    finally:
        lock.release()


def _record_pid(descriptor: int) -> None:
    os.ftruncate(descriptor, 0)
    os.write(descriptor, str(os.getpid()).encode())


def prepare_folder(out: Path, config: RunConfig, resume: bool) -> None:
    """Make `out` safe to write for `config`: without `resume` every earlier file goes first (so an
    interrupted restart never leaves old results beside a new config); with it, a finished run or a
    checkpoint made under other model-shaping settings is refused before anything is written (the reuse
    rule, :func:`reusable`). The finished marker is removed,
    so the folder reads as unfinished until this run writes it again."""
    if not resume:
        for name in FOLDER_FILES:
            (out / name).unlink(missing_ok=True)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        saved = training.load_checkpoint(checkpoint, "cpu").get("run")
        training.refuse_other_settings(saved, model_settings(config), checkpoint, "run settings")
    if resume and is_finished(out):  # the reuse rule: a finished run of other settings is never overwritten
        refuse_other_folder_settings(out, config)
    (out / "metrics.json").unlink(missing_ok=True)


def run_experiment(
    config: RunConfig, resume: bool = True, progress: bool = True, on_epoch_end=None, run_data: RunData | None = None
) -> Run | None:
    """Train and evaluate one configuration into its run folder ``config.out`` and return the :class:`Run`
    (model included). `on_epoch_end` is passed to :func:`ood_explain.core.training.train`. `run_data`: the data
    of this config when the caller has loaded it already (:func:`load_data`).

    The folder holds one configuration: a checkpoint of other settings is refused before anything is
    written, ``--restart`` (resume=False) clears it first, two processes never write it at once, and
    ``metrics.json`` is written last. A finished folder is only rescored, and only under the same
    model-shaping settings (:func:`reusable`). Rank 0 does the evaluation; other ranks return None."""
    config, method = resolve_with_method(config)  # the one lookup of the method along the run
    out = Path(config.out)
    rank, _ = world()
    seed_everything(config.seed)
    device = pick_device(config.device)
    run_data = run_data or load_data(config, method)
    settings = train_config(config, method)
    model = make_model(config, run_data.split.id_train.channels, method)
    with folder_lock(out) if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            prepare_folder(out, config, resume)
            record = {
                "run": dataclasses.asdict(config),
                "train": dataclasses.asdict(settings),
                "data": run_data.record(),
                "settings": model_settings(config),
                "plugin": method.source,
            }
            (out / "config.json").write_text(json.dumps(record, indent=2))
        history = train(
            model,
            run_data.split.id_train.images.to(device),
            settings,
            oe_images=run_data.oe.images.to(device) if run_data.oe is not None else None,
            checkpoint=out / "checkpoint.pt",
            resume=resume,
            progress=progress,
            on_epoch_end=on_epoch_end,
            identity=model_settings(config),
        )
        train_seconds = sum(row["seconds"] for row in history)  # every epoch, also those before a resume
        if rank != 0:
            barrier()  # wait for rank 0's evaluation, so every rank leaves with the run folder complete
            return None
        started = time.perf_counter()
        assert config.views is not None  # resolve() fills it from the preset: every preset sets it
        table = score_table(model, run_data.evaluation, method, config.views, config.seed, device, config.precision)
        metrics = {
            **metrics_of(table, method),
            "train_seconds": round(train_seconds, 2),
            "eval_seconds": round(time.perf_counter() - started, 2),
            "epochs": len(history),
        }
        run = Run(config, table, pd.DataFrame(history), metrics, run_data.record(), out, _model=model)
        write_results_files(run, out)
    barrier()
    return run


def write_results_files(run: Run, out: Path) -> None:
    """scores.csv and history.csv, then metrics.json (the finished marker) last."""
    run.scores.to_csv(out / "scores.csv", index_label="index", float_format="%.6g")
    run.history.to_csv(out / "history.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(run.metrics, indent=2))
