"""Why the tracked ‖z‖ curves rise and fall: BatchNorm's running averages.

A network in eval mode normalizes with BatchNorm's running averages of past batch statistics (PyTorch:
momentum 0.1, so roughly the last ten batches). When the weights change faster than those averages follow,
eval-mode features are computed with stale statistics and their norms are off. :func:`batchnorm_trace`
retrains a run and, at chosen epochs, scores the test images twice: as the tracker does (running averages)
and after :func:`recompute_batchnorm` (statistics of augmented ID training views of the current weights).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ood_explain.core import augment
from ood_explain.core.metrics import auroc
from ood_explain.core.models import ContrastiveModel
from ood_explain.core.scores import extract_features
from ood_explain.experiments.runs import RunConfig, load_data, resolve, run_experiment
from ood_explain.experiments.workers import Job
from ood_explain.teaching import notebook

TRACE = "ood_explain.teaching.diagnostics:trace_tracked_epochs"  # the workers' target of a background trace
TRACE_NAME = "BatchNorm trace"

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def recompute_batchnorm(model: ContrastiveModel, images: torch.Tensor) -> ContrastiveModel:
    """A copy of `model` (in eval mode) whose BatchNorm layers hold the exact mean and variance of `images`
    (float (N, C, H, W) in [0, 1]) under the current weights, instead of running averages."""
    fresh = copy.deepcopy(model)
    for layer in fresh.modules():
        if isinstance(layer, BATCHNORMS):
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average: one pass over all images gives their statistics
    fresh.train()
    fresh(images)
    return fresh.eval()


def mean_norms(model: ContrastiveModel, id_images: torch.Tensor, ood_images: torch.Tensor) -> dict[str, float]:
    """Mean ‖z‖ of ID and OOD uint8 images (eval mode: puts `model` in it) and the AUROC of ‖z‖ (ID positive)."""
    id_norms = extract_features(model, id_images).z.norm(dim=1)
    ood_norms = extract_features(model, ood_images).z.norm(dim=1)
    return {
        "id": id_norms.mean().item(),
        "ood": ood_norms.mean().item(),
        "auroc": auroc(id_norms.numpy(), ood_norms.numpy()),
    }


def trace_config(config: RunConfig) -> RunConfig:
    """The resolved config of `config`'s trace: the same run, on the CPU, in ``<out>-batchnorm``."""
    return resolve(dataclasses.replace(config, out=str(config.out) + "-batchnorm", device="cpu"))


def saved_trace(config: RunConfig, epochs: list[int]) -> pd.DataFrame | None:
    """The trace.csv of `config`'s trace when it holds exactly `epochs` (those within the run), else None."""
    config = trace_config(config)
    saved = Path(config.out) / "trace.csv"
    assert config.epochs is not None  # resolve() fills it from the preset
    wanted = sorted({e for e in epochs if 1 <= e <= config.epochs})
    if saved.exists() and (trace := pd.read_csv(saved))["epoch"].tolist() == wanted:
        return trace
    return None


def batchnorm_trace(config: RunConfig, epochs: list[int], views_per_image: int = 8) -> pd.DataFrame:
    """Train `config` (CPU) into ``<out>-batchnorm`` and, after each of `epochs`, score its ID and OOD test
    images with BatchNorm's running averages and with recomputed statistics. Waits for the trace when the
    kernel's workers have it (:func:`trace_in_background`); loaded from ``trace.csv`` when that folder holds
    one of the same epochs. Columns: epoch, train_view_norm (history), running_id, running_ood,
    running_auroc, recomputed_id, recomputed_ood, recomputed_auroc."""
    notebook.wait_for([Job(config, TRACE, what=TRACE_NAME)])
    if (trace := saved_trace(config, epochs)) is not None:
        return trace
    config = trace_config(config)
    saved = Path(config.out) / "trace.csv"
    data = load_data(config)
    id_test, ood_test = data.split.id_test.images, data.split.ood_test.images
    generator = augment.make_generator(config.seed, torch.device("cpu"))
    train = data.split.id_train.images
    views = torch.cat([augment.simclr_view(train, generator) for _ in range(views_per_image)])
    rows = []

    def score(epoch: int, model: ContrastiveModel, row: dict) -> None:
        if epoch in epochs:
            running = mean_norms(copy.deepcopy(model), id_test, ood_test)
            recomputed = mean_norms(recompute_batchnorm(model, views), id_test, ood_test)
            rows.append(
                {
                    "epoch": epoch,
                    "train_view_norm": row["id_norm"],
                    **{f"running_{k}": v for k, v in running.items()},
                    **{f"recomputed_{k}": v for k, v in recomputed.items()},
                }
            )

    run_experiment(config, resume=False, progress=False, on_epoch_end=score)  # every epoch, in one go
    pd.DataFrame(rows).to_csv(saved, index=False, float_format="%.5g")
    return pd.read_csv(saved)  # what was saved: the first call and every later one give the same numbers


def trace_tracked_epochs(config: RunConfig, restart: bool = False) -> None:
    """A worker's job (:data:`TRACE`): :func:`batchnorm_trace` of `config` at its tracked epochs, as notebooks
    02 and 03 draw it (`restart` is not used: a trace is always made from scratch)."""
    assert config.epochs is not None
    batchnorm_trace(config, notebook.tracked_epochs(config.epochs))


def trace_in_background(config: RunConfig, verbose: bool = True) -> None:
    """Start :func:`trace_tracked_epochs` of `config` in the kernel's workers (unless its trace.csv of the tracked
    epochs is there); :func:`batchnorm_trace` waits for it. A trace costs more than its run (it scores the full
    test set twice per tracked epoch): start it before the runs, so that it does not finish last."""
    assert config.epochs is not None
    if saved_trace(config, notebook.tracked_epochs(config.epochs)) is not None:
        if verbose:
            print("the BatchNorm trace is in the runs folder: its cell loads it")
        return
    notebook.start_in_background(
        [Job(config, TRACE, what=TRACE_NAME)],
        f"the BatchNorm trace of {config.method}, class {config.normal_class}",
        verbose,
    )
