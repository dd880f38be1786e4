"""Experiments end to end: presets, one run (train + score + write a run folder), sweeps over classes,
and the named paper tables of ``ood-explain reproduce``.

A run folder holds ``config.json``, ``history.csv``, ``checkpoint.pt``, ``scores.csv`` (one row per test
sample: is_id and every score) and ``metrics.json`` (the main score's metrics at the top, one block per
score under ``scores``). A run whose ``metrics.json`` exists is finished; one with only a checkpoint
resumes.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data, scores
from .metrics import ood_metrics
from .models import build_model
from .distributed import barrier, world
from .train import METHODS, METHODS_WITH_EXTERNAL_OE, TrainConfig, autocast_dtype, train

PRESETS: dict[str, dict] = {
    # seconds on a CPU: for tests and CI
    "smoke": dict(arch="small-cnn", epochs=2, batch_size=32, max_steps_per_epoch=3, views=2, warmup_epochs=1,
                  test_limit=300, train_eval_limit=300),
    # minutes on 2 CPU cores: 6 epochs of at most 25 steps (3,200 ID images an epoch at batch 128)
    "lite": dict(arch="small-cnn", epochs=6, batch_size=128, max_steps_per_epoch=25, views=4, warmup_epochs=1,
                 train_eval_limit=2000),
    # the official hyper-parameters (../shared/method.md section 4), for GPUs
    "paper": dict(arch="resnet18-cifar", epochs=1000, batch_size=64, views=32, warmup_epochs=50),
}
# Overrides where a dataset needs them: digits has ~120 training images per class.
DATASET_PRESETS: dict[tuple[str, str], dict] = {
    ("digits", "smoke"): dict(batch_size=32),
    ("digits", "lite"): dict(epochs=60, batch_size=64, warmup_epochs=3),
    ("digits", "paper"): dict(arch="small-cnn", batch_size=64),
    ("imagefolder", "paper"): dict(arch="resnet18"),
}
LEAVE_ONE_OUT_PAPER_EPOCHS = 500


@dataclass
class RunConfig:
    """Everything that defines one run. Fields left as None are filled from the preset by :func:`resolve`."""

    dataset: str = "digits"
    protocol: str = "one-vs-rest"
    normal_class: int = 0
    method: str = "oecl"
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
    batch_size: int | None = None
    max_steps_per_epoch: int | None = None
    warmup_epochs: int | None = None
    alpha: float = 1.0
    lr: float = 0.1
    views: int | None = None
    precision: str = "auto"
    compile: bool = False
    test_limit: int | None = None
    train_eval_limit: int | None = None
    extra: dict = field(default_factory=dict)


def resolve(config: RunConfig) -> RunConfig:
    """Validate names and fill unset fields from the preset (and the dataset's overrides)."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    if config.method not in METHODS:
        raise ValueError(f"unknown method {config.method!r}; choose one of {', '.join(METHODS)}")
    if config.dataset not in data.DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {', '.join(data.DATASETS)}")
    if config.protocol not in data.PROTOCOLS:
        raise ValueError(f"unknown protocol {config.protocol!r}; choose one of {', '.join(data.PROTOCOLS)}")
    if config.method in METHODS_WITH_EXTERNAL_OE and not config.oe:
        raise ValueError(f"method {config.method!r} needs an OE source: --oe DATASET, imagefolder:DIR or photos")
    defaults = dict(PRESETS[config.preset])
    defaults.update(DATASET_PRESETS.get((config.dataset, config.preset), {}))
    if config.preset == "paper" and config.protocol == "leave-one-out":
        defaults["epochs"] = LEAVE_ONE_OUT_PAPER_EPOCHS
    if config.epochs is not None and config.warmup_epochs is None and "warmup_epochs" in defaults:
        # A shorter (or longer) run keeps the preset's share of warm-up epochs (paper: 50 of 1000).
        defaults["warmup_epochs"] = round(defaults["warmup_epochs"] * config.epochs / defaults["epochs"])
    if config.method == "self-oecl":
        # two instances (0 and 90 degrees) per image: half the images keeps the rows per step of the
        # other methods, as the paper does (32 images -> 64 instances)
        defaults["batch_size"] = defaults["batch_size"] // 2
    filled = {name: defaults[name] for name in defaults
              if name in RunConfig.__dataclass_fields__ and getattr(config, name) is None}
    return dataclasses.replace(config, **filled)


def pick_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU. A bare "cuda" means the current GPU (under torchrun: GPU
    LOCAL_RANK, made current by :func:`ood_explain.distributed.setup`)."""
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


def limit(imageset: data.ImageSet, count: int | None, seed: int) -> data.ImageSet:
    """A seeded random subset of at most `count` images (all of them when count is None)."""
    if count is None or len(imageset) <= count:
        return imageset
    index = torch.randperm(len(imageset), generator=torch.Generator().manual_seed(seed))[:count]
    return imageset.subset(torch.sort(index).values)


def load_split(config: RunConfig) -> tuple[data.Split, data.ImageSet | None]:
    """The protocol split and the OE set (None for SimCLR and self-OECL, which never use an external OE set:
    self-OECL's OE rows are rotations of its own ID images)."""
    train_set = data.load_dataset(config.dataset, "train", config.data_root, config.download, config.image_size)
    test_set = data.load_dataset(config.dataset, "test", config.data_root, config.download, config.image_size)
    split = data.make_split(train_set, test_set, config.protocol, config.normal_class)
    oe = None
    if config.oe and config.method in METHODS_WITH_EXTERNAL_OE:
        outliers = train_set.subset(~torch.isin(train_set.labels, split.id_train.labels.unique()))
        oe = data.load_oe(config.oe, split.id_train, config.data_root, config.download, config.oe_shots,
                          config.seed, outlier_classes=outliers)
    return split, oe


def run_experiment(config: RunConfig, resume: bool = True, progress: bool = True, on_epoch_end=None) -> dict:
    """Train and evaluate one configuration, write its run folder, and return its metrics dict.
    `on_epoch_end` is passed to :func:`ood_explain.train.train` (called after every epoch on rank 0)."""
    config = resolve(config)
    out = Path(config.out)
    rank, _ = world()
    seed_everything(config.seed)
    device = pick_device(config.device)
    split, oe = load_split(config)
    train_config = TrainConfig(
        method=config.method, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
        alpha=config.alpha, warmup_epochs=config.warmup_epochs, seed=config.seed, precision=config.precision,
        compile=config.compile, max_steps_per_epoch=config.max_steps_per_epoch,
    )
    model = build_model(config.arch, split.id_train.channels, *_normalization(config.dataset),
                        with_classifier=config.method == "bce")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        record = {"run": dataclasses.asdict(config), "train": dataclasses.asdict(train_config),
                  "data": {"dataset": split.id_train.name, "id_train": len(split.id_train),
                           "id_test": len(split.id_test), "ood_test": len(split.ood_test),
                           "oe": oe.name if oe is not None else None, "oe_images": len(oe) if oe is not None else 0,
                           **split.id_train.notes, **(oe.notes if oe is not None else {})}}
        (out / "config.json").write_text(json.dumps(record, indent=2))
    started = time.perf_counter()
    history = train(
        model, split.id_train.images.to(device), train_config,
        oe_images=oe.images.to(device) if oe is not None else None,
        checkpoint=out / "checkpoint.pt", resume=resume, progress=progress, on_epoch_end=on_epoch_end,
    )
    train_seconds = time.perf_counter() - started
    if rank != 0:
        barrier()  # wait for rank 0's evaluation, so every rank leaves with the run folder complete
        return {}
    metrics = evaluate(model, split, config, history, train_seconds, device)
    barrier()
    return metrics


def _normalization(dataset: str) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    return data.NORMALIZATION.get(dataset, (None, None))


def evaluate(model, split: data.Split, config: RunConfig, history: list[dict], train_seconds: float,
             device: torch.device) -> dict:
    """Score the ID and OOD test images, then write scores.csv, history.csv and metrics.json."""
    out = Path(config.out)
    started = time.perf_counter()
    dtype = autocast_dtype(config.precision, device, model.is_resnet)
    id_test = limit(split.id_test, config.test_limit, config.seed)
    ood_test = limit(split.ood_test, config.test_limit, config.seed + 1)
    train_sample = limit(split.id_train, config.train_eval_limit, config.seed + 2)

    def features(imageset: data.ImageSet, views: int) -> scores.Features:
        return scores.extract_features(model, imageset.images.to(device), views=views, seed=config.seed,
                                       autocast=dtype)

    train_features = features(train_sample, 0)
    test_features = features(
        data.ImageSet(torch.cat([id_test.images, ood_test.images]), torch.cat([id_test.labels, ood_test.labels]),
                      id_test.classes, id_test.name), config.views)
    per_sample = scores.all_scores(test_features, train_features)
    is_id = np.concatenate([np.ones(len(id_test), bool), np.zeros(len(ood_test), bool)])
    per_score = {name: ood_metrics(values[is_id], values[~is_id]) for name, values in per_sample.items()}
    main = scores.main_score(config.method, per_sample)
    table = pd.DataFrame({"is_id": is_id.astype(int),
                          "label": torch.cat([id_test.labels, ood_test.labels]).numpy(), **per_sample})
    table.to_csv(out / "scores.csv", index_label="index", float_format="%.6g")
    pd.DataFrame(history).to_csv(out / "history.csv", index=False)
    metrics = {"score": main, **per_score[main], "scores": per_score,
               "train_seconds": round(train_seconds, 2), "eval_seconds": round(time.perf_counter() - started, 2),
               "epochs": len(history)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


# ---------------------------------------------------------------------------------- sweeps and tables


def class_count(dataset: str, root: str | None) -> int:
    """Number of classes of a dataset (reads the test split)."""
    return len(data.load_dataset(dataset, "test", root).classes)


def sweep(base: RunConfig, methods: list[str], root: str | Path, classes: list[int] | None = None,
          progress: bool = True) -> pd.DataFrame:
    """Run every (method, class) of a protocol into ``root/<method>/class-<k>/``, skipping finished runs,
    and write ``root/results.csv`` and ``root/results.md``. Returns the AUROC table (classes x methods).
    Every configuration is validated before the first run starts."""
    root = Path(root)
    classes = classes if classes is not None else list(range(class_count(base.dataset, base.data_root)))
    for method in methods:
        resolve(dataclasses.replace(base, method=method))
    for method in methods:
        for k in classes:
            out = root / method / f"class-{k}"
            if (out / "metrics.json").exists():
                continue
            config = dataclasses.replace(base, method=method, normal_class=k, out=str(out))
            metrics = run_experiment(config, progress=progress)
            if metrics:
                print(f"{method:>10} class {k}: AUROC {metrics['auroc']:.3f} ({metrics['score']}, "
                      f"train {metrics['train_seconds']:.0f}s)", flush=True)
    table = collect_results(root)
    if world()[0] == 0:
        write_results(table, root)
    return table


def collect_results(root: str | Path, metric: str = "auroc") -> pd.DataFrame:
    """Read every ``*/class-*/metrics.json`` under `root` into a classes x methods table with a mean row."""
    rows = []
    for path in sorted(Path(root).glob("*/class-*/metrics.json")):
        rows.append({"method": path.parent.parent.name, "class": int(path.parent.name.split("-")[1]),
                     metric: json.loads(path.read_text())[metric]})
    if not rows:
        raise FileNotFoundError(f"no finished runs (*/class-*/metrics.json) under {root}")
    table = pd.DataFrame(rows).pivot(index="class", columns="method", values=metric)
    order = [m for m in METHODS if m in table.columns]
    table = table[order]
    table.loc["mean"] = table.mean()
    return table


def write_results(table: pd.DataFrame, root: str | Path, header: str = "") -> None:
    """results.csv and results.md (AUROC in %, one decimal) in `root`."""
    root = Path(root)
    table.to_csv(root / "results.csv", float_format="%.4f")
    percent = (table * 100).round(1)
    (root / "results.md").write_text(header + percent.to_markdown() + "\n")
