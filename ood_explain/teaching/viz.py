"""Plotly figures of a run (norm histograms, ROC curves, norm trajectories) and self-contained HTML reports.

Every function takes plain data (arrays, DataFrames, run folders) and returns a ``plotly`` Figure, so the
same figures serve the notebooks, the widgets and ``ood-explain report``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from ood_explain.core.metrics import auroc
from ood_explain.experiments.runs import Run, id_and_ood
from ood_explain.teaching.extras import need

ID_COLOR, OOD_COLOR, OE_COLOR = "#1f77b4", "#d62728", "#ff7f0e"
SCORE_LABELS = {
    "norm": "‖z‖ (single view)",
    "norm_of_mean": "‖mean of z over views‖",
    "mean_sq_norm": "mean ‖z‖² over views",
    "cosine_nn": "cosine to nearest train z",
    "csi": "cosine × ‖z‖",
    "knn": "−kNN distance on h",
    "hsc": "−HSC distance",
    "bce": "BCE logit",
}
# One colour per method in every figure of runs (trajectories, bars): SimCLR is purple wherever it appears,
# OECL green, self-OECL orange. Blue and red stay for ID and OOD test images (the histograms).
METHOD_COLORS = {"simclr": "#9467bd", "oecl": "#2ca02c", "self-oecl": "#ff7f0e", "hsc": "#8c564b", "bce": "#e377c2"}
OTHER_COLORS = ["#17becf", "#bcbd22", "#7f7f7f", "#1f77b4", "#d62728", "#393b79", "#8c6d31"]

go = need("plotly.graph_objects")
make_subplots = need("plotly.subplots").make_subplots
# plotly is imported at run time through need(), so mypy cannot see its classes: figures are typed Any
Figure: TypeAlias = Any  # a plotly.graph_objects.Figure


def _method_key(label: str) -> str:
    """'OECL' and 'oecl (OE photos)' -> 'oecl': the label without details in parentheses, lower case."""
    return str(label).split(" (")[0].strip().lower()


def series_colors(labels) -> dict[str, str]:
    """A colour for each label: the method's colour (:data:`METHOD_COLORS`) for the first label of each
    method, so a method keeps its colour from figure to figure; the other labels (a second run of the same
    method, a variant such as 'OECL, weight decay 0', a score) take the next colours of :data:`OTHER_COLORS`."""
    labels = list(dict.fromkeys(str(label) for label in labels))
    colors, used = {}, set()
    for label in labels:
        color = METHOD_COLORS.get(_method_key(label))
        if color and color not in used:
            colors[label] = color
            used.add(color)
    spare = (c for c in OTHER_COLORS + list(METHOD_COLORS.values()) if c not in used)
    for label in labels:
        if label not in colors:
            colors[label] = next(spare, "#444444")
    return colors


def class_word(runs) -> str:
    """'held-out class' when every run follows the leave-one-out protocol (its class is the OOD one), else 'class'."""
    runs = list(runs)
    return "held-out class" if runs and all(run.config.protocol == "leave-one-out" for run in runs) else "class"


def score_histogram(scores_id: np.ndarray, scores_ood: np.ndarray, score: str = "norm", title: str = "") -> Figure:
    """Overlaid, normalized histograms of a score for ID and OOD test samples, AUROC in the title."""
    figure = go.Figure()
    for values, name, color in ((scores_id, "ID test", ID_COLOR), (scores_ood, "OOD test", OOD_COLOR)):
        figure.add_trace(
            go.Histogram(
                x=values, name=name, marker_color=color, opacity=0.6, histnorm="probability density", nbinsx=60
            )
        )
    value = auroc(scores_id, scores_ood)
    figure.update_layout(
        barmode="overlay",
        title=f"{title} AUROC {value:.3f}".strip(),
        xaxis_title=SCORE_LABELS.get(score, score),
        yaxis_title="density",
        legend_title="test set",
    )
    return figure


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC, ID = positive") -> Figure:
    """ROC curves, one per entry of `curves` (label -> (scores_id, scores_ood)), AUROC in the legend."""
    figure = go.Figure()
    for label, (scores_id, scores_ood) in curves.items():
        truth = np.concatenate([np.ones(len(scores_id)), np.zeros(len(scores_ood))])
        fpr, tpr, _ = roc_curve(truth, np.concatenate([scores_id, scores_ood]))
        figure.add_trace(
            go.Scatter(
                x=fpr,
                y=tpr,
                mode="lines",
                name=f"{label} (AUROC {auroc(scores_id, scores_ood):.3f}, "
                f"{len(scores_id)} + {len(scores_ood)} test images)",
            )
        )
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="gray")))
    figure.update_layout(
        title=title,
        xaxis_title="false positive rate (OOD accepted)",
        yaxis_title="true positive rate (ID accepted)",
        legend_title="method / score",
    )
    return figure


def norm_trajectory(histories: dict[str, pd.DataFrame], title: str = "Mean raw ‖z‖ during training") -> Figure:
    """Per-epoch mean ‖z‖ of ID views (solid) and OE views (dashed) for each run in `histories`
    (label -> history table with columns epoch, id_norm, oe_norm, alpha)."""
    figure = go.Figure()
    colors = series_colors(histories)
    warmups: dict[float, list[str]] = {}  # end of the warm-up -> runs with that warm-up
    for label, history in histories.items():
        color = colors[str(label)]
        figure.add_trace(
            go.Scatter(
                x=history["epoch"],
                y=history["id_norm"],
                mode="lines+markers",
                name=f"{label}: ID views",
                line=dict(color=color),
            )
        )
        if history["oe_norm"].notna().any():
            figure.add_trace(
                go.Scatter(
                    x=history["epoch"],
                    y=history["oe_norm"],
                    mode="lines+markers",
                    name=f"{label}: OE views",
                    line=dict(color=color, dash="dash"),
                )
            )
        warmup = history.loc[history["alpha"] == 0, "epoch"]
        if len(warmup) and len(warmup) < len(history) and history["oe_norm"].notna().any():
            warmups.setdefault(float(warmup.max()), []).append(str(label))
    for end, labels in warmups.items():  # one band (and one label) per distinct warm-up, not one per run
        text = "warm-up (α = 0)" if len(warmups) == 1 else f"warm-up of {', '.join(labels)} (α = 0)"
        figure.add_vrect(
            x0=0.5,
            x1=end + 0.5,
            fillcolor="gray",
            opacity=0.12,
            line_width=0,
            annotation_text=text,
            annotation_position="top left",
        )
    figure.update_layout(
        title=title, xaxis_title="epoch", yaxis_title="mean ‖z‖ (raw projection)", legend_title="run: views"
    )
    return figure


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per score with its four metrics."""
    return pd.DataFrame(metrics["scores"]).T.rename_axis("score")


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _figures_html(figures: list[Figure]) -> list[str]:
    # The first figure carries plotly.js inline, so the page works offline.
    return [figure.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, figure in enumerate(figures)]


def _write_html(path: Path, page: str) -> None:
    # A folder or file name that is not valid UTF-8 reaches the page as a lone surrogate: written as a
    # character reference, which browsers show as U+FFFD, so the file stays valid UTF-8.
    path.write_text(page, encoding="utf-8", errors="xmlcharrefreplace")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write an HTML report of one run (default ``RUN_DIR/report.html``) and return its path."""
    run_dir = Path(run_dir)
    run = Run.load(run_dir)
    main = run.metrics["score"]
    label = (
        f"{run.method} on {run.data_record.get('dataset', run.config.dataset)}, {run.config.protocol} "
        f"class {run.normal_class}, seed {run.config.seed}"
    )
    figures = [
        score_histogram(*run.split(main), main, title=f"{run.method}: {SCORE_LABELS.get(main, main)}"),
        roc_figure({f"{run.method} · {name}": run.split(name) for name in run.metrics["scores"]}),
        norm_trajectory({run.method: run.history}),
    ]
    n_id, n_ood = (len(side) for side in run.split())
    summary = (
        f"<p>{html.escape(label)}. OE: {html.escape(str(run.data_record.get('oe')))}. "
        f"Main score <b>{html.escape(main)}</b>: AUROC <b>{run.metrics['auroc']:.4f}</b> on {n_id} ID + "
        f"{n_ood} OOD test images. Training {run.metrics['train_seconds']:.0f} s for "
        f"{run.metrics['epochs']} epochs.</p>"
    )
    path = Path(out) if out else run_dir / "report.html"
    _write_html(path, _page(label, [summary, metrics_table(run.metrics).round(4).to_html()] + _figures_html(figures)))
    return path


def write_comparison_report(root: str | Path, out: str | Path | None = None, title: str = "") -> Path:
    """One HTML page for a sweep folder ``root/<method>/class-<k>/seed-<s>/``: the AUROC table, and for the
    first class and seed the main-score histograms of every method, their ROC curves and norm trajectories."""
    root = Path(root)
    runs = [Run.load(p.parent) for p in sorted(root.glob("*/class-*/seed-*/metrics.json"))]
    if not runs:
        raise FileNotFoundError(f"no finished runs under {root}")
    results = root / "results.md"
    parts = [f"<h2>AUROC (%)</h2><pre>{html.escape(results.read_text())}</pre>" if results.exists() else ""]
    first_class = min(run.normal_class for run in runs)
    first_seed = min(run.config.seed for run in runs)
    histograms, curves, histories = [], {}, {}
    for run in runs:
        if (run.normal_class, run.config.seed) != (first_class, first_seed):
            continue
        scores_id, scores_ood = run.split()
        histograms.append(
            score_histogram(
                scores_id,
                scores_ood,
                run.metrics["score"],
                title=f"{run.method}, {class_word([run])} {first_class}, seed {first_seed}:",
            )
        )
        curves[run.method] = (scores_id, scores_ood)
        histories[run.method] = run.history
    figures = histograms + [roc_figure(curves, f"ROC, class {first_class}, ID = positive"), norm_trajectory(histories)]
    path = Path(out) if out else root / "report.html"
    _write_html(path, _page(title or f"ood-explain results: {root}", parts + _figures_html(figures)))
    return path


# ------------------------------------------------------------------- figures of the notebooks


def norm_trajectories(run: Run, score: str = "norm") -> pd.DataFrame:
    """Per tracked epoch: mean of `score` (default ‖z‖) over ID and over OOD test images, the AUROC, and how
    many ID and OOD images it counts (n_id, n_ood)."""
    rows = []
    for epoch, part in run.epochs_table().groupby("epoch"):
        scores_id, scores_ood = id_and_ood(part, score)
        rows.append(
            {
                "epoch": epoch,
                "id_mean": scores_id.mean(),
                "ood_mean": scores_ood.mean(),
                "auroc": auroc(scores_id, scores_ood),
                "n_id": len(scores_id),
                "n_ood": len(scores_ood),
            }
        )
    return pd.DataFrame(rows)


def direction_descent_figure(path: pd.DataFrame, target) -> Figure:
    """Two panels: the path of z in the plane (with the target direction), and ‖z‖ per step."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("z during gradient descent", "‖z‖ per step"))
    figure.add_trace(go.Scatter(x=path["x"], y=path["y"], mode="lines+markers", name="z (path)"), 1, 1)
    scale = float(path["norm"].max()) * 1.1
    t = np.asarray(target, dtype=float)
    t = t / np.linalg.norm(t) * scale
    figure.add_trace(
        go.Scatter(
            x=[0, t[0]], y=[0, t[1]], mode="lines", name="target direction", line=dict(dash="dash", color="gray")
        ),
        1,
        1,
    )
    figure.add_trace(go.Scatter(x=path["step"], y=path["norm"], mode="lines+markers", name="‖z‖"), 1, 2)
    figure.update_xaxes(title_text="z₁", row=1, col=1)
    figure.update_yaxes(title_text="z₂", row=1, col=1, scaleanchor="x", scaleratio=1)
    figure.update_xaxes(title_text="gradient step", row=1, col=2)
    figure.update_yaxes(title_text="‖z‖", row=1, col=2)
    figure.update_layout(
        title="A loss that only sees the direction of z still makes ‖z‖ grow", legend_title="curve", height=420
    )
    return figure


def nt_xent_descent_figure(table: pd.DataFrame) -> Figure:
    """Mean ‖z‖ per gradient step on NT-Xent, one line per step size."""
    figure = go.Figure()
    for lr, part in table.groupby("lr"):
        figure.add_trace(go.Scatter(x=part["step"], y=part["mean_norm"], mode="lines", name=f"step size {lr:g}"))
    figure.update_layout(
        title="NT-Xent on free features: the mean ‖z‖ only grows",
        xaxis_title="gradient step",
        yaxis_title="mean ‖z‖ over the batch",
        legend_title="step size",
        height=380,
    )
    return figure


def temperature_figure(temperatures=(0.1, 0.2, 0.5, 1.0), negatives: int = 14) -> Figure:
    """NT-Xent of one anchor as a function of its positive's cosine similarity, with `negatives`
    negatives at cosine 0 (left), and the softmax weight of a hard negative at cosine 0.8 (right)."""
    s = np.linspace(-1, 1, 101)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss of one anchor", "weight of a hard negative"))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, tau in enumerate(temperatures):
        color = palette[i % len(palette)]
        loss = -s / tau + np.log(np.exp(s / tau) + negatives * np.exp(0.0))
        figure.add_trace(
            go.Scatter(x=s, y=loss, mode="lines", name=f"τ = {tau:g}", legendgroup=str(tau), line=dict(color=color)),
            1,
            1,
        )
        hard = np.exp(0.8 / tau) / (np.exp(s / tau) + np.exp(0.8 / tau) + (negatives - 1))
        figure.add_trace(
            go.Scatter(
                x=s,
                y=hard,
                mode="lines",
                name=f"τ = {tau:g}",
                legendgroup=str(tau),
                line=dict(color=color),
                showlegend=False,
            ),
            1,
            2,
        )
    figure.update_xaxes(title_text="cosine similarity to the positive", row=1, col=1)
    figure.update_xaxes(title_text="cosine similarity to the positive", row=1, col=2)
    figure.update_yaxes(title_text="loss ℓ<sub>i</sub> of the anchor", row=1, col=1)
    figure.update_yaxes(title_text="softmax weight of the hard negative", row=1, col=2)
    figure.update_layout(
        title="Temperature: small τ sharpens the softmax and focuses on hard negatives",
        legend_title="temperature",
        height=400,
    )
    return figure


def score_histograms(runs: list[Run], score: str = "norm", title: str = "") -> Figure:
    """One panel per run: histograms of `score` for ID and OOD test images; each panel title gives the AUROC
    of that score and the test images it counts (on three short lines, so that three panels side by side do
    not overlap). Under leave-one-out the class is called the held-out class."""
    titles, word = [], class_word(runs)
    for run in runs:
        scores_id, scores_ood = run.split(score)
        titles.append(
            f"{run.label}<br>{word} {run.normal_class}: AUROC {auroc(scores_id, scores_ood):.3f}<br>"
            f"<span style='font-size:11px'>{SCORE_LABELS.get(score, score)}<br>"
            f"{len(scores_id)} ID + {len(scores_ood)} OOD test images</span>"
        )
    figure = make_subplots(
        rows=1, cols=len(runs), subplot_titles=titles, horizontal_spacing=0.06 if len(runs) > 2 else 0.1
    )
    for annotation in figure.layout.annotations:
        annotation.font.size = 13
    for col, run in enumerate(runs, start=1):
        for values, name, color in zip(run.split(score), ("ID test", "OOD test"), (ID_COLOR, OOD_COLOR)):
            figure.add_trace(
                go.Histogram(
                    x=values,
                    name=name,
                    marker_color=color,
                    opacity=0.6,
                    nbinsx=40,
                    histnorm="probability density",
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                1,
                col,
            )
        figure.update_xaxes(title_text=SCORE_LABELS.get(score, score), row=1, col=col)
    figure.update_yaxes(title_text="density", row=1, col=1)
    figure.update_layout(
        barmode="overlay",
        title=title or f"{SCORE_LABELS.get(score, score)}: ID vs OOD test images",
        legend_title="test set",
        height=470,
        margin=dict(t=150),
        legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
    )
    return figure


def trajectory_figure(runs: list[Run], score: str = "norm") -> Figure:
    """Mean `score` (default ‖z‖) of ID and OOD test images per tracked epoch, one colour per run
    (ID solid, OOD dashed); the AUROC per epoch in a second panel."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean ‖z‖ of test images", "AUROC of ‖z‖"))
    colors = series_colors(run.label for run in runs)
    for run in runs:
        color = colors[run.label]
        table = norm_trajectories(run, score)
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table["id_mean"],
                mode="lines+markers",
                line=dict(color=color),
                name=f"{run.label}: ID test",
            ),
            1,
            1,
        )
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table["ood_mean"],
                mode="lines+markers",
                line=dict(color=color, dash="dash"),
                name=f"{run.label}: OOD test",
            ),
            1,
            1,
        )
        last = table.iloc[-1]
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table["auroc"],
                mode="lines+markers",
                line=dict(color=color),
                name=f"{run.label}: AUROC ({int(last['n_id'])} + {int(last['n_ood'])} test images)",
                showlegend=True,
            ),
            1,
            2,
        )
    figure.add_hline(y=0.5, line_dash="dot", line_color="gray", row=1, col=2)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="mean ‖z‖", row=1, col=1)
    figure.update_yaxes(title_text="AUROC (ID = positive)", row=1, col=2, range=[0, 1.02])
    figure.update_layout(
        title="‖z‖ of ID and OOD test images during training", legend_title="run: test set", height=420
    )
    return figure


def auroc_bars(table: pd.DataFrame, title: str = "AUROC per class", value_name: str = "AUROC (%)") -> Figure:
    """Grouped bars from a table (rows: groups on the x axis, columns: bars), with the chance line."""
    figure = go.Figure()
    colors = series_colors(table.columns)
    for column in table.columns:
        figure.add_trace(
            go.Bar(x=[str(i) for i in table.index], y=table[column], name=str(column), marker_color=colors[str(column)])
        )
    chance = 50 if "%" in value_name else 0.5
    figure.add_hline(y=chance, line_dash="dot", line_color="gray", annotation_text="chance")
    figure.update_layout(
        barmode="group",
        title=title,
        xaxis_title=table.index.name or "",
        yaxis_title=value_name,
        legend_title=table.columns.name or "",
        height=400,
    )
    return figure


def budget_figures(table: pd.DataFrame, longest: str | Path) -> Figure:
    """Left: class-mean AUROC against training steps, one line per method, error bars = std over seeds
    (`table`: steps, method, auroc_mean, auroc_std). Right: mean ‖z‖ of ID views (solid) and OE views
    (dashed) per epoch at the longest budget, averaged over the runs under `longest` (their history.csv)."""
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("class-mean AUROC against the training budget", "‖z‖ of training views, longest budget"),
    )
    palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for i, (method, part) in enumerate(table.groupby("method", sort=False)):
        color = palette[i % len(palette)]
        figure.add_trace(
            go.Scatter(
                x=part["steps"],
                y=100 * part["auroc_mean"],
                mode="lines+markers",
                name=method,
                legendgroup=method,
                line=dict(color=color),
                error_y=dict(type="data", array=100 * part["auroc_std"].fillna(0)),
            ),
            1,
            1,
        )
        histories = [pd.read_csv(p) for p in sorted(Path(longest).glob(f"{method}/class-*/seed-*/history.csv"))]
        if histories:
            mean = pd.concat(histories).groupby("epoch")[["id_norm", "oe_norm"]].mean().reset_index()
            figure.add_trace(
                go.Scatter(
                    x=mean["epoch"],
                    y=mean["id_norm"],
                    mode="lines",
                    legendgroup=method,
                    name=f"{method}: ID views",
                    line=dict(color=color),
                ),
                1,
                2,
            )
            if mean["oe_norm"].notna().any():
                figure.add_trace(
                    go.Scatter(
                        x=mean["epoch"],
                        y=mean["oe_norm"],
                        mode="lines",
                        legendgroup=method,
                        name=f"{method}: OE views",
                        line=dict(color=color, dash="dash"),
                    ),
                    1,
                    2,
                )
    figure.add_hline(y=50, line_dash="dot", line_color="gray", row=1, col=1)
    budgets = sorted(table["steps"].unique())
    figure.update_xaxes(
        title_text="optimizer steps", type="log", tickvals=budgets, ticktext=[str(b) for b in budgets], row=1, col=1
    )  # only the budgets as ticks: no log-axis minor labels
    figure.update_yaxes(title_text="AUROC (%), mean ± std over seeds", row=1, col=1)
    figure.update_xaxes(title_text="epoch (25 steps each)", row=1, col=2)
    figure.update_yaxes(title_text="mean ‖z‖ (raw projection)", type="log", row=1, col=2)
    figure.update_layout(height=460, legend_title="method", margin=dict(t=90))
    return figure


def batchnorm_figure(trace: pd.DataFrame, title: str) -> Figure:
    """Two panels from :func:`ood_explain.teaching.diagnostics.batchnorm_trace`: mean ‖z‖ of ID and OOD test images
    per epoch with BatchNorm's running averages (dashed) and with recomputed statistics (solid), beside the
    training views' ‖z‖; and the AUROC of ‖z‖ both ways."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean ‖z‖", "AUROC of ‖z‖, full test set"))
    lines = [
        ("train_view_norm", "training views (train mode)", "#7f7f7f", "dot"),
        ("running_id", "ID test, running averages", "#1f77b4", "dash"),
        ("running_ood", "OOD test, running averages", "#d62728", "dash"),
        ("recomputed_id", "ID test, recomputed statistics", "#1f77b4", "solid"),
        ("recomputed_ood", "OOD test, recomputed statistics", "#d62728", "solid"),
    ]
    for column, name, color, dash in lines:
        figure.add_trace(
            go.Scatter(
                x=trace["epoch"], y=trace[column], mode="lines+markers", name=name, line=dict(color=color, dash=dash)
            ),
            1,
            1,
        )
    for column, name, dash in (
        ("running_auroc", "AUROC, running averages", "dash"),
        ("recomputed_auroc", "AUROC, recomputed statistics", "solid"),
    ):
        figure.add_trace(
            go.Scatter(
                x=trace["epoch"],
                y=trace[column],
                mode="lines+markers",
                name=name,
                line=dict(color="#2ca02c", dash=dash),
            ),
            1,
            2,
        )
    figure.add_hline(y=0.5, line_dash="dot", line_color="gray", row=1, col=2)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="mean ‖z‖", row=1, col=1)
    figure.update_yaxes(title_text="AUROC (ID = positive)", range=[0, 1.02], row=1, col=2)
    figure.update_layout(title=title, legend_title="curve", height=430)
    return figure


def write_static_image(figure, path: Path, width: int = 1150, height: int = 520) -> str:
    """Write `figure` as a PNG (plotly + kaleido, which drives a Chrome or Chromium; ``pip install
    'ood-explain[figures]'``) and say so; when that is not possible, say why (the HTML file has the figure)."""
    try:
        figure.write_image(path, width=width, height=height)
    except (ImportError, ValueError, RuntimeError) as error:  # kaleido missing, or no browser for it
        return f"{path.name} not written ({type(error).__name__}: {str(error).splitlines()[0][:160]})"
    return f"figure: {path}"


def write_budget_report(table: pd.DataFrame, root: str | Path) -> str:
    """``budget.html`` (and ``budget.png`` where kaleido can) in `root` for a budget study's table
    (:func:`ood_explain.experiments.reproduce.budget_study`): AUROC against steps with error bars, and the
    ‖z‖ of ID and OE views per epoch at the longest budget. Returns what was written, in words."""
    root = Path(root)
    figure = budget_figures(table, root / f"steps-{max(table['steps'])}")
    figure.write_html(root / "budget.html", include_plotlyjs=True)
    return f"report: {root / 'budget.html'}; " + write_static_image(figure, root / "budget.png")
