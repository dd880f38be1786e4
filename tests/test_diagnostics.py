"""BatchNorm diagnostics: recomputed statistics and the retraced run behind notebooks 02 and 03."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ood_explain import diagnostics, models
from ood_explain.experiments import RunConfig


def test_recompute_batchnorm_holds_the_exact_statistics_of_the_images():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", in_channels=1)
    images = torch.rand(64, 1, 28, 28)
    fresh = diagnostics.recompute_batchnorm(model, images)
    assert fresh.training is False and model.training is True  # a copy; the original is untouched
    first_conv = next(m for m in fresh.modules() if isinstance(m, torch.nn.Conv2d))
    first_norm = next(m for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        activations = first_conv((images - fresh.mean) / fresh.std)
    torch.testing.assert_close(first_norm.running_mean, activations.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_norm.running_var, activations.var(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    untouched = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(untouched.running_mean, torch.zeros_like(untouched.running_mean))


def test_eval_mode_after_recomputing_matches_train_mode_on_the_same_batch():
    """With the statistics of a batch, eval mode gives what train mode gives on that batch."""
    torch.manual_seed(1)
    model = models.build_model("small-cnn", in_channels=1)
    images = torch.rand(512, 1, 28, 28)
    with torch.no_grad():
        train_mode = model.train()(images)[1]
    fresh = diagnostics.recompute_batchnorm(model, images)
    with torch.no_grad():
        eval_mode = fresh(images)[1]
    # equal up to the unbiased (running) vs biased (batch) variance of the 512-sample BatchNorm1d
    torch.testing.assert_close(eval_mode, train_mode, rtol=1e-2, atol=1e-2)


@pytest.mark.slow
def test_batchnorm_trace_scores_the_chosen_epochs_and_is_loaded_the_second_time(tmp_path):
    config = RunConfig(dataset="digits", method="simclr", preset="smoke", epochs=3, out=str(tmp_path / "run"))
    trace = diagnostics.batchnorm_trace(config, [1, 3])
    assert list(trace["epoch"]) == [1, 3]
    assert {"train_view_norm", "running_id", "recomputed_id", "running_auroc", "recomputed_auroc"} <= set(trace)
    assert ((trace[["running_auroc", "recomputed_auroc"]] >= 0) & (trace[["running_auroc", "recomputed_auroc"]] <= 1)).all().all()
    saved = tmp_path / "run-batchnorm" / "trace.csv"
    assert saved.exists()
    pd.testing.assert_frame_equal(diagnostics.batchnorm_trace(config, [1, 3]), pd.read_csv(saved))
    assert list(diagnostics.batchnorm_trace(config, [2, 3])["epoch"]) == [2, 3]  # other epochs: made again

