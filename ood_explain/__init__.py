"""ood-explain: OOD detection with the l2-norm of contrastive features (Le-Gia & Ahn, arXiv 2312.15288).

Modules, one per concept, by layer:

- core: ``data`` (datasets, protocols, OE sources), ``augment`` (batched SimCLR views), ``models``
  (encoders + projection head), ``losses`` (NT-Xent, OECL, HSC, BCE), ``methods`` (the method registry:
  one record per method), ``training`` (the training step and loop, checkpoints), ``scores`` (features and
  OOD scores, higher = more ID), ``metrics`` (AUROC and friends, ID positive), ``distributed`` (several
  processes);
- experiments: ``experiments`` (RunConfig, config -> data and model, scoring, the Run object and its run
  folder), ``sweeps`` (methods x classes x seeds, tables over seeds), ``reproduce`` (named paper tables),
  ``quickstart``;
- teaching: ``notebook`` (the notebooks' run registry: load-or-train, tracked epochs), ``viz`` (plotly
  figures and HTML reports), ``widgets`` (interactive explorers), ``exercises`` (checkers),
  ``diagnostics`` (BatchNorm running vs recomputed statistics), ``claims`` (the numbers notebook prose
  quotes, over seeds);
- tools: ``cli`` (the ``ood-explain`` command), ``bench`` (training throughput).

The main names are importable from the package itself, e.g. ``ood_explain.train``.
"""

from .data import ImageSet, Split, load_dataset, load_oe, make_split
from .experiments import (Run, RunConfig, evaluation_sets, id_and_ood, load_data, make_model, run_experiment,
                          score_table)
from .methods import Method, get as get_method, register as register_method
from .metrics import auroc, ood_metrics
from .models import ContrastiveModel, build_model
from .training import TrainConfig, train

__version__ = "0.1.0"

__all__ = ["ContrastiveModel", "ImageSet", "Method", "Run", "RunConfig", "Split", "TrainConfig", "auroc",
           "build_model", "evaluation_sets", "get_method", "id_and_ood", "load_data", "load_dataset", "load_oe",
           "make_model", "make_split",
           "ood_metrics", "register_method", "run_experiment", "score_table", "train"]
