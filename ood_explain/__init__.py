"""ood-explain: OOD detection with the l2-norm of contrastive features (Le-Gia & Ahn, arXiv 2312.15288).

Four layers, each a subpackage; a layer imports only the layers below it (checked by import-linter, the
``[tool.importlinter]`` contracts in pyproject.toml):

- ``ood_explain.core``: data, augment, models, losses, methods, training, scores, metrics, distributed, checks;
- ``ood_explain.experiments``: runs (RunConfig, the Run and its folder), sweeps, reproduce, quickstart;
- ``ood_explain.teaching``: notebook, viz, widgets, exercises, diagnostics, claims, notebook_check (the
  ``notebooks`` extra);
- ``ood_explain.tools``: cli, bench, gpu_check, tensorboard (the ``tensorboard`` extra).

The main names are importable from the package itself, e.g. ``ood_explain.train``, and every module keeps
its short name: ``from ood_explain import notebook`` is :mod:`ood_explain.teaching.notebook` (loaded when
first used, so importing ``ood_explain`` never needs the teaching extras).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

from ood_explain.core.data import CIFAR10_MEAN, CIFAR10_STD, ImageSet, Split, load_dataset, load_oe, make_split
from ood_explain.core.losses import mean_norm, nt_xent, oecl_loss
from ood_explain.core.methods import Forward, Method, rotated_views, two_views, two_views_and_oe
from ood_explain.core.methods import get as get_method
from ood_explain.core.methods import register as register_method
from ood_explain.core.methods import unregister as unregister_method
from ood_explain.core.metrics import auroc, ood_metrics
from ood_explain.core.models import ContrastiveModel, build_model
from ood_explain.core.training import TrainConfig, train
from ood_explain.experiments.runs import (
    Run,
    RunConfig,
    evaluation_sets,
    id_and_ood,
    load_data,
    make_model,
    run_experiment,
    score_table,
)

__version__ = "0.1.0"  # the one place of the version (pyproject.toml reads it; the notebooks' setup cell pins it)
# Where the notebooks' setup cell installs the package from when it is missing (Colab, a new environment)
REPOSITORY = "https://github.com/ood-explain/ood-explain"


# Each module's short name -> its place in the layers (``ood_explain.data`` is ``ood_explain.core.data``).
MODULES = {
    **{
        name: f"core.{name}"
        for name in (
            "data",
            "augment",
            "models",
            "losses",
            "methods",
            "training",
            "scores",
            "metrics",
            "distributed",
            "checks",
        )
    },
    **{name: f"experiments.{name}" for name in ("sweeps", "reproduce", "quickstart")},
    **{
        name: f"teaching.{name}"
        for name in ("notebook", "viz", "widgets", "exercises", "diagnostics", "claims", "notebook_check")
    },
    **{name: f"tools.{name}" for name in ("cli", "bench", "gpu_check", "tensorboard")},
}


class _ShortNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import ood_explain.viz`` give the module ``ood_explain.teaching.viz`` itself (one module object
    under two names, so monkeypatching either patches both)."""

    def find_spec(self, fullname: str, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package == __name__ and name in MODULES:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(f"{__name__}.{MODULES[spec.name.partition('.')[2]]}")

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # the real module ran already under its own name


if not any(isinstance(finder, _ShortNames) for finder in sys.meta_path):
    sys.meta_path.insert(0, _ShortNames())  # before the path finders: the old flat file names are gone


def __getattr__(name: str) -> types.ModuleType:
    """``ood_explain.viz`` and ``from ood_explain import viz``: the module, imported when first used."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "ContrastiveModel",
    "Forward",
    "ImageSet",
    "Method",
    "Run",
    "RunConfig",
    "Split",
    "TrainConfig",
    "auroc",
    "build_model",
    "evaluation_sets",
    "get_method",
    "id_and_ood",
    "load_data",
    "load_dataset",
    "load_oe",
    "make_model",
    "make_split",
    "mean_norm",
    "nt_xent",
    "oecl_loss",
    "ood_metrics",
    "register_method",
    "rotated_views",
    "run_experiment",
    "score_table",
    "train",
    "two_views",
    "two_views_and_oe",
    "unregister_method",
]
