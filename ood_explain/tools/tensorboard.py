"""Run folders as TensorBoard logs (``ood-explain tensorboard``): :func:`export` writes, per run folder,
``LOG_DIR/<run name>/`` with

- ``train/<column>``: every numeric column of ``history.csv`` (loss, ID and OE ‖z‖, α, lr, seconds) per epoch;
- ``test/<metric>`` (the main score's, and the seconds) and ``test/<score>/<metric>``: ``metrics.json``, at the
  last epoch; the config as text (``config``) and as hyper-parameters (the HParams tab, against ``test/*``);
- ``scores/<score>/id`` and ``scores/<score>/ood``: histograms of each per-sample score of ``scores.csv``;
- the projector embeddings ``z`` and ``h`` of at most `max_images` test images (half ID, half OOD, seeded), from
  the folder's checkpoint and the test images that its config rebuilds, with thumbnails and the metadata
  columns ``side`` (ID/OOD), ``class`` and the main score.

Needs the ``tensorboard`` extra; without it :func:`export` is a one-line :class:`TensorBoardMissing`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ood_explain.core import data, scores
from ood_explain.experiments.runs import Run, evaluation_sets, load_split

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

EXTRA = "pip install 'ood-explain[tensorboard]'"
PROJECTOR_CONFIG = "projector_config.pbtxt"
EMBEDDINGS = ("z", "h")  # Features attributes, also the embeddings' names in the projector
THUMBNAIL = 32  # largest side of a projector thumbnail, in pixels


class TensorBoardMissing(ModuleNotFoundError):
    """tensorboard is not installed (the ``tensorboard`` extra)."""


def require_tensorboard() -> None:
    """Import ``torch.utils.tensorboard``; a :class:`TensorBoardMissing` naming the extra without tensorboard."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "tensorboard":
            raise
        message = f"tensorboard is not installed; ood-explain tensorboard needs the tensorboard extra: {EXTRA}"
        raise TensorBoardMissing(message, name="tensorboard") from None


def load_run(folder: str | Path, with_model: bool = True) -> Run:
    """A finished run folder (with its checkpoint when `with_model`); a path that is not one is a one-line error
    naming it."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: point at a run folder that ood-explain run or sweep wrote")
    run = Run.load(path)
    if with_model and not (path / "checkpoint.pt").is_file():
        raise FileNotFoundError(
            f"{path} has no checkpoint.pt: the embeddings of z and h need the trained model (or use --max-images 0)"
        )
    return run


def run_names(folders: Sequence[Path]) -> list[str]:
    """Each folder's name, or, when two names clash (``a/seed-0``, ``b/seed-0``), its path below the folders'
    common parent."""
    paths = [folder.resolve() for folder in folders]
    names = [path.name for path in paths]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath(paths))
    return [path.relative_to(common).as_posix() for path in paths]


def embedding_sample(is_id: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `count` samples, half ID and half OOD (the other side fills in where one has
    too few), drawn with `seed`. is_id: bool (N,)."""
    id_index, ood_index = np.flatnonzero(is_id), np.flatnonzero(~is_id)
    n_id = min(len(id_index), max(count // 2, count - len(ood_index)))
    n_ood = min(len(ood_index), count - n_id)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(id_index, n_id, replace=False), rng.choice(ood_index, n_ood, replace=False)])
    return np.sort(chosen)


def thumbnails(images: torch.Tensor, size: int = THUMBNAIL) -> torch.Tensor:
    """uint8 (N, C, S, S) -> float (N, C, s, s) in [0, 1], at most `size` pixels a side (the package's one
    resize, :func:`ood_explain.core.data.resize_square`)."""
    side = images.shape[-1]
    return (data.resize_square(images, size) if side > size else images).float() / 255


def hyperparameters(run: Run) -> dict[str, bool | int | float | str]:
    """The run's config as HParams values (``out`` left out: it is the run's name; None as "none"; a method's
    own parameters as ``method_params.NAME``)."""
    config = dataclasses.asdict(run.config)
    config.pop("out")
    own = config.pop("method_params") or {}
    flat = {**config, **{f"method_params.{k}": v for k, v in own.items()}}
    return {
        k: v if isinstance(v, bool | int | float | str) else "none" if v is None else str(v) for k, v in flat.items()
    }


def _test_images(run: Run, index: np.ndarray) -> data.ImageSet:
    """The run's test images (the rows of ``scores.csv``) at `index`, rebuilt from its config; a ValueError
    when they no longer match the file."""
    config = run.config
    split, _ = load_split(config)
    evaluation = evaluation_sets(split, config.test_limit, config.train_eval_limit, config.seed)
    table = run.scores
    if len(table) != len(evaluation.is_id()) or not (
        np.array_equal(evaluation.is_id(), table["is_id"].to_numpy().astype(bool))
        and np.array_equal(evaluation.labels(), table["label"].to_numpy())
    ):
        raise ValueError(
            f"the test images that {run.path}/config.json rebuilds ({len(evaluation.is_id())}) are not the rows of "
            f"its scores.csv ({len(table)}): was the dataset changed since the run? Export with --max-images 0"
        )
    chosen = torch.as_tensor(index)
    labels = torch.as_tensor(evaluation.labels())[chosen]
    return data.ImageSet(evaluation.test_images()[chosen], labels, split.id_test.classes, split.id_test.name)


def _clear_earlier_export(target: Path) -> None:
    """Remove what an earlier export wrote into `target` (event files, the projector's files); a folder that
    holds anything else is refused."""
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} is a file; choose another --logdir")
    others = sorted(
        p.name
        for p in target.iterdir()
        if not (p.name.startswith("events.out.tfevents.") or p.name == PROJECTOR_CONFIG or p.name.isdigit())
    )
    if others:
        raise FileExistsError(
            f"{target} holds files that no export wrote ({', '.join(others[:3])}); choose another --logdir"
        )
    shutil.rmtree(target)


def _write_run(run: Run, target: Path, max_images: int, seed: int) -> Path:
    """Write one loaded run's TensorBoard log into `target` (replacing an earlier export there)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    assert run.path is not None  # loaded from its folder
    metrics, history = run.metrics, run.history
    last_epoch = int(metrics.get("epochs", len(history)))
    _clear_earlier_export(target)
    with SummaryWriter(log_dir=str(target)) as writer:
        epochs = history["epoch"] if "epoch" in history else range(1, len(history) + 1)
        for column in history.select_dtypes("number").columns.drop("epoch", errors="ignore"):
            for epoch, value in zip(epochs, history[column]):
                if np.isfinite(value):
                    writer.add_scalar(f"train/{column}", float(value), int(epoch))
        for name, value in metrics.items():  # the main score's metrics and the seconds (the epochs are the step)
            if isinstance(value, int | float) and name != "epochs":
                writer.add_scalar(f"test/{name}", value, last_epoch)
        for score, block in metrics["scores"].items():
            for name, value in block.items():
                writer.add_scalar(f"test/{score}/{name}", value, last_epoch)
            id_values, ood_values = run.split(score)
            writer.add_histogram(f"scores/{score}/id", id_values, last_epoch)
            writer.add_histogram(f"scores/{score}/ood", ood_values, last_epoch)
        record = (run.path / "config.json").read_text().splitlines()
        writer.add_text("config", "\n".join("    " + line for line in record), last_epoch)  # a markdown code block
        metric_tags = {f"test/{name}": metrics[name] for name in metrics["scores"][metrics["score"]]}
        for summary in hparams(hyperparameters(run), metric_tags):
            writer.file_writer.add_summary(summary, last_epoch)
        if max_images > 0:
            _write_embeddings(writer, run, max_images, seed, last_epoch)
    return target


def _write_embeddings(writer: SummaryWriter, run: Run, max_images: int, seed: int, step: int) -> None:
    """The projector embeddings z (N, d) and h (N, F) of a seeded, balanced sample of N test images."""
    table = run.scores
    index = embedding_sample(table["is_id"].to_numpy().astype(bool), max_images, seed)
    images = _test_images(run, index)
    features = scores.extract_features(run.model, images.images)
    main = run.metrics["score"]
    rows = [
        ["ID" if is_id else "OOD", images.classes[label], f"{value:.4g}"]
        for is_id, label, value in table.iloc[index][["is_id", "label", main]].itertuples(index=False)
    ]
    pictures = thumbnails(images.images)
    for name in EMBEDDINGS:
        writer.add_embedding(
            getattr(features, name),
            metadata=rows,
            metadata_header=["side", "class", main],
            label_img=pictures,
            global_step=step,
            tag=name,
        )


def export(runs: Sequence[str | Path], log_dir: str | Path, max_images: int = 1000, seed: int = 0) -> list[Path]:
    """Export each run folder to ``log_dir/<run name>/`` (:func:`run_names`), every folder checked before any is
    written; returns the folders written. `max_images`: test images per projector embedding (0: none, and no
    checkpoint needed)."""
    require_tensorboard()
    folders = list({Path(folder).resolve(): Path(folder) for folder in runs}.values())  # each folder once
    loaded = [load_run(folder, with_model=max_images > 0) for folder in folders]
    return [_write_run(run, Path(log_dir) / name, max_images, seed) for run, name in zip(loaded, run_names(folders))]


def export_run(run_folder: str | Path, log_dir: str | Path, max_images: int = 1000, seed: int = 0) -> Path:
    """Export one run folder to ``log_dir/<its name>/`` (:func:`export`); returns that folder."""
    return export([run_folder], log_dir, max_images, seed)[0]
