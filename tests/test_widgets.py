"""Drive every interactive explorer's callbacks without a browser: change a control, assert the figure's
data changed. Runs two smoke-preset trainings on the embedded digits (seconds)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from ood_explain import data, notebook, viz, widgets


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OOD_EXPLAIN_RUNS", str(root))
        torch.set_num_threads(1)
        configs = [notebook.config("simclr", 0, preset="smoke"), notebook.config("oecl", 0, preset="smoke", oe="photos"),
                   notebook.config("simclr", 1, preset="smoke")]
        return [notebook.load_or_run(c, progress=False, verbose=False) for c in configs]


@pytest.mark.slow
def test_load_or_run_tracks_epochs_and_loads_the_second_time(runs):
    first = runs[0]
    assert first.trained_now
    assert sorted(first.epoch_scores["epoch"].unique()) == [1, 2]
    assert {"norm", "cosine_nn", "knn"} <= set(first.epoch_scores.columns)
    assert "norm_of_mean" not in first.epoch_scores and "norm_of_mean" in first.scores  # the final model only
    last = first.epoch_scores[first.epoch_scores["epoch"] == 2]  # the final model, on the same seeded subset
    np.testing.assert_allclose(last["norm"].to_numpy(), first.scores["norm"].to_numpy(), rtol=1e-5)
    again = notebook.load_or_run(dataclasses.replace(first.config, out=str(first.path)), verbose=False)
    assert not again.trained_now and again.auroc() == first.auroc()
    assert notebook.config("simclr", 0, preset="smoke").out != notebook.config("simclr", 0, preset="smoke", lr=0.05).out


@pytest.mark.slow
def test_norm_dashboard_callbacks(runs):
    dashboard = widgets.NormDashboard(runs)
    def snapshot():
        return (np.array(dashboard.histogram.data[0].x).copy(), np.array(dashboard.curve.data[1].x).copy(),
                dashboard.histogram.layout.title.text)
    before = snapshot()
    dashboard.method_control.value = "oecl (OE photos)"
    after_method = snapshot()
    assert not np.array_equal(before[0], after_method[0])
    dashboard.epoch_control.value = 1
    after_epoch = snapshot()
    assert not np.array_equal(after_method[0], after_epoch[0]) and list(after_epoch[1]) == [1]
    auroc_before = dashboard.auroc
    dashboard.score_control.value = "knn"
    assert dashboard.histogram.layout.xaxis.title.text != "‖z‖ (single view)"
    assert dashboard.auroc != auroc_before
    dashboard.class_control.value = 1
    assert dashboard.method_control.options == ("simclr",)
    assert "class 1" in dashboard.histogram.layout.title.text
    for figure in (dashboard.histogram, dashboard.curve):
        assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text
        assert all(trace.name for trace in figure.data)
    assert re.search(r"AUROC \d\.\d{3}<br><sup>\d+ \+ \d+ test images</sup>", dashboard.histogram.layout.title.text)  # names its test set


@pytest.mark.slow
def test_norm_dashboard_offers_only_the_scores_a_notebook_introduced(runs):
    dashboard = widgets.NormDashboard(runs, scores=["norm", "knn"])
    assert [value for _, value in dashboard.score_control.options] == ["norm", "knn"]
    with pytest.raises(ValueError, match="no run here has per-epoch scores norm_of_mean"):
        widgets.NormDashboard(runs, scores=["norm", "norm_of_mean"])


def test_augmentation_explorer_callbacks():
    images = data.load_digits("test").images[:3]
    explorer = widgets.AugmentationExplorer(images, n_views=4)
    for control, value in ((explorer.rotation, 90), (explorer.crop_scale, (0.5, 0.6)), (explorer.jitter, 0.9),
                           (explorer.seed, 3)):
        before = explorer.figure.data[0].source
        control.value = value
        assert explorer.figure.data[0].source != before, control.description
    assert explorer.config().crop_scale == (0.5, 0.6)
    assert "rotation 90°" in explorer.figure.layout.title.text


def test_augmentation_explorer_restores_its_figure_and_says_run_the_cell():
    """A reopened notebook draws the explorer from the widget state the kernel holds: that state must hold
    the current views (not the empty figure plotly started from), and the output says to run the cell."""
    explorer = widgets.AugmentationExplorer(data.load_digits("test").images[:2], n_views=2)
    explorer.rotation.value = 180
    state = explorer.figure._widget_data
    assert [trace["type"] for trace in state] == ["image"] and state[0]["source"] == explorer.figure.data[0].source
    assert "rotation 180°" in explorer.figure._widget_layout["title"]["text"]
    assert explorer.note in explorer.widget.children and "run this cell again" in explorer.note.value
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert all("run this cell again" in bundle[kind] for kind in ("text/plain", "text/html"))


@pytest.mark.slow
def test_dashboard_and_umap_figures_are_restorable(runs):
    dashboard = widgets.NormDashboard(runs)
    dashboard.epoch_control.value = 1
    assert len(dashboard.histogram._widget_data) == 2 and len(dashboard.histogram._widget_data[0]["x"]) > 0
    assert list(dashboard.curve._widget_data[1]["x"]) == [1]


@pytest.mark.slow
def test_umap_explorer_callbacks(runs):
    explorer = widgets.UmapExplorer.from_run(runs[1], per_side=40, n_neighbors=8)
    x_before = np.array(explorer.figure.data[0].x).copy()
    explorer.space.value = "h"
    assert not np.allclose(x_before, np.array(explorer.figure.data[0].x))
    explorer.space.value = "z_hat"
    assert set(explorer.embeddings) == {"z", "h", "z_hat"}
    explorer.color.value = "‖z‖"
    assert np.allclose(np.array(explorer.figure.data[0].marker.color), explorer.norms[explorer.is_id])

    class Points:
        point_inds = [2]

    explorer.on_hover(explorer.figure.data[1], Points())
    assert explorer.shown == int(np.flatnonzero(~explorer.is_id)[2])
    assert explorer.preview.value[:4] == b"\x89PNG" and "OOD" in explorer.caption.value


def test_static_grids_have_axis_titles_and_no_legend():
    images = data.load_digits("test").images[:2]
    for figure in (widgets.augmentation_grid(images, 3), widgets.rotation_grid(images)):
        assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text
        # an image grid has nothing a legend square could stand for: no legend, no dummy traces
        assert figure.layout.showlegend is False and [trace.type for trace in figure.data] == ["image"]
        assert figure.layout.annotations and figure.layout.annotations[0].text  # the caption says what the columns are


def test_rotation_grid_rows_are_labelled_by_the_digits():
    digits = data.load_digits("test")
    first = [int((digits.labels == k).nonzero()[0, 0]) for k in (0, 6, 8)]
    figure = widgets.rotation_grid(digits.images[first], row_labels=[0, 6, 8], row_title="digit")
    assert list(figure.layout.yaxis.ticktext) == ["0", "6", "8"] and figure.layout.yaxis.title.text == "digit"
    assert list(widgets.rotation_grid(digits.images[first]).layout.yaxis.ticktext) == ["#0", "#1", "#2"]
    figure = widgets.augmentation_grid(digits.images[first], 2, row_labels=digits.labels[first])
    assert list(figure.layout.yaxis.ticktext) == ["0", "6", "8"]
    with pytest.raises(ValueError):
        widgets.rotation_grid(digits.images[first], row_labels=[0, 6])


def test_notebook_config_ignores_an_oe_source_a_method_does_not_use(tmp_path, monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_RUNS", str(tmp_path))
    for method in ("simclr", "self-oecl"):
        assert notebook.config(method, 0, preset="smoke", oe="photos") == notebook.config(method, 0, preset="smoke")
    with_oe = notebook.config("oecl", 0, preset="smoke", oe="photos")
    assert with_oe.oe == "photos" and "oecl-photos" in with_oe.out


def test_notebook_06_on_a_gpu_defaults_to_the_short_preset(monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_FAST", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the device check, mocked
    plan = notebook.full_experiments_plan()
    assert (plan.preset, plan.epochs, plan.classes) == ("paper", notebook.GPU_SHORT_EPOCHS, [0, 1])
    assert notebook.full_experiments_plan(full_paper_table=True).epochs is None  # 1000 epochs only when asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert notebook.full_experiments_plan().preset == "lite"
    monkeypatch.setenv("OOD_EXPLAIN_FAST", "1")
    assert notebook.full_experiments_plan().preset == "smoke"


@pytest.mark.slow
def test_score_histograms_name_score_and_test_set_in_each_title(runs):
    figure = viz.score_histograms(runs[:2], "norm_of_mean")
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert len(titles) == 2 and all("AUROC" in t and "‖mean of z over views‖" in t and "test images" in t
                                    for t in titles)
