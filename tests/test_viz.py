"""Figures name what they show: each AUROC says which score and how many test images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from ood_explain import notebook, viz


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


def test_temperature_figure_axis_titles_render_without_raw_markup():
    figure = viz.temperature_figure()
    titles = [figure.layout.yaxis.title.text, figure.layout.yaxis2.title.text]
    assert "ℓ<sub>i</sub>" in titles[0] and not any("_" in t for t in titles)  # plotly shows "ℓ_i" as is


def _history(epochs=6, warmup=2, oe=True):
    return pd.DataFrame({"epoch": range(1, epochs + 1), "id_norm": np.linspace(4, 5, epochs),
                         "oe_norm": np.linspace(4, 1, epochs) if oe else np.nan,
                         "alpha": [0.0] * warmup + [1.0] * (epochs - warmup)})


def test_norm_trajectory_draws_one_warmup_band_and_keeps_each_methods_colour():
    first = viz.norm_trajectory({"SimCLR": _history(oe=False), "OECL": _history()})
    second = viz.norm_trajectory({"OECL": _history(), "OECL, weight decay 0": _history()})
    assert len(second.layout.shapes) == 1 and [a.text for a in second.layout.annotations] == ["warm-up (α = 0)"]
    colors = [{t.name: t.line.color for t in f.data} for f in (first, second)]
    assert colors[0]["OECL: ID views"] == colors[1]["OECL: ID views"] == viz.METHOD_COLORS["oecl"]
    assert colors[1]["OECL: OE views"] == colors[1]["OECL: ID views"]  # one colour per run, OE dashed
    assert colors[1]["OECL, weight decay 0: ID views"] != colors[1]["OECL: ID views"]
    assert colors[0]["SimCLR: ID views"] == viz.METHOD_COLORS["simclr"]
    different = viz.norm_trajectory({"OECL": _history(warmup=2), "OECL late": _history(warmup=3)})
    assert len(different.layout.shapes) == 2 and all("OECL" in a.text for a in different.layout.annotations)


def test_series_colors_follow_the_method_across_figures():
    colors = viz.series_colors(["self-oecl", "simclr", "oecl (OE photos)"])
    assert colors == {"self-oecl": viz.METHOD_COLORS["self-oecl"], "simclr": viz.METHOD_COLORS["simclr"],
                      "oecl (OE photos)": viz.METHOD_COLORS["oecl"]}
    table = pd.DataFrame({"simclr": [40.0], "oecl (OE photos)": [90.0]}, index=pd.Index([0], name="class"))
    bars = {t.name: t.marker.color for t in viz.auroc_bars(table).data}
    assert bars == {"simclr": viz.METHOD_COLORS["simclr"], "oecl (OE photos)": viz.METHOD_COLORS["oecl"]}
    twice = viz.series_colors(["oecl (OE photos)", "oecl (OE photos; weight decay 0)"])
    assert len(set(twice.values())) == 2


def _fake_run(label, protocol, normal_class=0, n_id=30, n_ood=70, seed=0):
    rng = np.random.default_rng(seed)
    scores = {"norm": (rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood))}
    return SimpleNamespace(label=label, normal_class=normal_class, config=SimpleNamespace(protocol=protocol),
                           split=lambda score=None: scores[score or "norm"],
                           metrics={"score": "norm", "scores": {"norm": {"auroc": 0.75}}})


def test_leave_one_out_figures_and_tables_say_held_out_class():
    loo = [_fake_run("simclr", "leave-one-out"), _fake_run("oecl (OE photos)", "leave-one-out", seed=1)]
    titles = [a.text for a in viz.score_histograms(loo, "norm").layout.annotations]
    assert len(titles) == 2 and all("held-out class 0: AUROC" in t for t in titles)
    assert notebook.auroc_table(loo).index.names == ["run", "held-out class"]
    one_vs_rest = [_fake_run("simclr", "one-vs-rest")]
    assert "held-out" not in viz.score_histograms(one_vs_rest).layout.annotations[0].text
    assert notebook.auroc_table(one_vs_rest).index.names == ["run", "class"]


def test_three_histogram_panels_keep_their_titles_short():
    runs = [_fake_run(label, "one-vs-rest", 6, seed=i) for i, label in enumerate(["simclr", "self-oecl", "oecl (OE photos)"])]
    figure = viz.score_histograms(runs, "norm")
    for annotation in figure.layout.annotations:  # no line wider than about a third of a notebook's width
        lines = [line.split(">")[-1] for line in annotation.text.replace("</span>", "").split("<br>")]
        assert max(len(line) for line in lines) <= 36, lines
    assert figure.layout.legend.orientation == "h"  # the legend below, not taking width from the panels
