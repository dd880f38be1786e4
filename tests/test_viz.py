"""Figures name what they show: each AUROC says which score and how many test images."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ood_explain import viz


def test_roc_legend_names_the_auroc_and_the_test_set():
    rng = np.random.default_rng(0)
    figure = viz.roc_figure({"OECL ‖z‖": (rng.normal(1, 1, 30), rng.normal(0, 1, 70))})
    assert figure.data[0].name.startswith("OECL ‖z‖ (AUROC 0.") and figure.data[0].name.endswith(", 30 + 70 test images)")


def test_batchnorm_figure_draws_both_statistics_and_names_the_test_set():
    trace = pd.DataFrame({"epoch": [1, 5], "train_view_norm": [4.0, 5.0], "running_id": [0.7, 9.0],
                          "running_ood": [0.7, 12.0], "running_auroc": [0.5, 0.2], "recomputed_id": [4.1, 4.5],
                          "recomputed_ood": [4.2, 5.0], "recomputed_auroc": [0.5, 0.4]})
    figure = viz.batchnorm_figure(trace, title="t")
    names = [trace.name for trace in figure.data]
    assert len(names) == 7 and sum("running averages" in n for n in names) == 3
    assert [a.text for a in figure.layout.annotations][:2] == ["mean ‖z‖", "AUROC of ‖z‖, full test set"]
    assert list(figure.data[1].y) == [0.7, 9.0]  # the ID test norms with running averages
