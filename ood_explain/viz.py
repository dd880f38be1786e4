"""Plotly figures of a run (norm histograms, ROC curves, norm trajectories) and self-contained HTML reports.

Every function takes plain data (arrays, DataFrames, run folders) and returns a ``plotly`` Figure, so the
same figures serve the notebooks, the widgets and ``ood-explain report``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import roc_curve

from .metrics import auroc

ID_COLOR, OOD_COLOR, OE_COLOR = "#1f77b4", "#d62728", "#ff7f0e"
SCORE_LABELS = {
    "norm": "‖z‖ (single view)", "norm_of_mean": "‖mean of z over views‖", "mean_sq_norm": "mean ‖z‖² over views",
    "cosine_nn": "cosine to nearest train z", "csi": "cosine × ‖z‖", "knn": "−kNN distance on h",
    "hsc": "−HSC distance", "bce": "BCE logit",
}


def score_histogram(scores_id: np.ndarray, scores_ood: np.ndarray, score: str = "norm", title: str = "") -> go.Figure:
    """Overlaid, normalized histograms of a score for ID and OOD test samples, AUROC in the title."""
    figure = go.Figure()
    for values, name, color in ((scores_id, "ID test", ID_COLOR), (scores_ood, "OOD test", OOD_COLOR)):
        figure.add_trace(go.Histogram(x=values, name=name, marker_color=color, opacity=0.6,
                                      histnorm="probability density", nbinsx=60))
    value = auroc(scores_id, scores_ood)
    figure.update_layout(barmode="overlay", title=f"{title} AUROC {value:.3f}".strip(),
                         xaxis_title=SCORE_LABELS.get(score, score), yaxis_title="density", legend_title="test set")
    return figure


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC, ID = positive") -> go.Figure:
    """ROC curves, one per entry of `curves` (label -> (scores_id, scores_ood)), AUROC in the legend."""
    figure = go.Figure()
    for label, (scores_id, scores_ood) in curves.items():
        truth = np.concatenate([np.ones(len(scores_id)), np.zeros(len(scores_ood))])
        fpr, tpr, _ = roc_curve(truth, np.concatenate([scores_id, scores_ood]))
        figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines",
                                    name=f"{label} (AUROC {auroc(scores_id, scores_ood):.3f})"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                line=dict(dash="dot", color="gray")))
    figure.update_layout(title=title, xaxis_title="false positive rate (OOD accepted)",
                         yaxis_title="true positive rate (ID accepted)", legend_title="method / score")
    return figure


def norm_trajectory(histories: dict[str, pd.DataFrame], title: str = "Mean raw ‖z‖ during training") -> go.Figure:
    """Per-epoch mean ‖z‖ of ID views (solid) and OE views (dashed) for each run in `histories`
    (label -> history table with columns epoch, id_norm, oe_norm, alpha)."""
    figure = go.Figure()
    for label, history in histories.items():
        figure.add_trace(go.Scatter(x=history["epoch"], y=history["id_norm"], mode="lines+markers",
                                    name=f"{label}: ID views"))
        if history["oe_norm"].notna().any():
            figure.add_trace(go.Scatter(x=history["epoch"], y=history["oe_norm"], mode="lines+markers",
                                        name=f"{label}: OE views", line=dict(dash="dash")))
        warmup = history.loc[history["alpha"] == 0, "epoch"]
        if len(warmup) and len(warmup) < len(history) and history["oe_norm"].notna().any():
            figure.add_vrect(x0=0.5, x1=warmup.max() + 0.5, fillcolor="gray", opacity=0.12, line_width=0,
                             annotation_text="warm-up (α = 0)", annotation_position="top left")
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title="mean ‖z‖ (raw projection)",
                         legend_title="run: views")
    return figure


def load_run(run_dir: str | Path) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    """(config, metrics, per-sample scores, history) of a finished run folder."""
    run_dir = Path(run_dir)
    missing = [name for name in ("config.json", "metrics.json", "scores.csv", "history.csv")
               if not (run_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished run folder: missing {', '.join(missing)}")
    return (json.loads((run_dir / "config.json").read_text()), json.loads((run_dir / "metrics.json").read_text()),
            pd.read_csv(run_dir / "scores.csv"), pd.read_csv(run_dir / "history.csv"))


def split_scores(table: pd.DataFrame, score: str) -> tuple[np.ndarray, np.ndarray]:
    """(ID scores, OOD scores) of one score column of a scores.csv table."""
    is_id = table["is_id"].to_numpy().astype(bool)
    values = table[score].to_numpy()
    return values[is_id], values[~is_id]


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per score with its four metrics."""
    return pd.DataFrame(metrics["scores"]).T.rename_axis("score")


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _figures_html(figures: list[go.Figure]) -> list[str]:
    # The first figure carries plotly.js inline, so the page works offline.
    return [figure.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, figure in enumerate(figures)]


def _write_html(path: Path, page: str) -> None:
    # A folder or file name that is not valid UTF-8 reaches the page as a lone surrogate: written as a
    # character reference, which browsers show as U+FFFD, so the file stays valid UTF-8.
    path.write_text(page, encoding="utf-8", errors="xmlcharrefreplace")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write an HTML report of one run (default ``RUN_DIR/report.html``) and return its path."""
    run_dir = Path(run_dir)
    config, metrics, table, history = load_run(run_dir)
    run = config["run"]
    main = metrics["score"]
    label = f"{run['method']} on {config['data']['dataset']}, {run['protocol']} class {run['normal_class']}"
    figures = [
        score_histogram(*split_scores(table, main), main, title=f"{run['method']}: {SCORE_LABELS.get(main, main)}"),
        roc_figure({f"{run['method']} · {name}": split_scores(table, name) for name in metrics["scores"]}),
        norm_trajectory({run["method"]: history}),
    ]
    summary = (f"<p>{html.escape(label)}. OE: {html.escape(str(config['data'].get('oe')))}. "
               f"Main score <b>{html.escape(main)}</b>: AUROC <b>{metrics['auroc']:.4f}</b>. "
               f"Training {metrics['train_seconds']:.0f} s for {metrics['epochs']} epochs.</p>")
    path = Path(out) if out else run_dir / "report.html"
    _write_html(path, _page(label, [summary, metrics_table(metrics).round(4).to_html()] + _figures_html(figures)))
    return path


def write_comparison_report(root: str | Path, out: str | Path | None = None, title: str = "") -> Path:
    """One HTML page for a sweep folder ``root/<method>/class-<k>/``: the AUROC table, and for the first
    class the main-score histograms of every method, their ROC curves and their norm trajectories."""
    root = Path(root)
    runs = sorted(p.parent for p in root.glob("*/class-*/metrics.json"))
    if not runs:
        raise FileNotFoundError(f"no finished runs under {root}")
    results = root / "results.md"
    parts = [f"<h2>AUROC (%)</h2><pre>{html.escape(results.read_text())}</pre>" if results.exists() else ""]
    first_class = min(int(p.name.split("-")[1]) for p in runs)
    histograms, curves, histories = [], {}, {}
    for run_dir in runs:
        if int(run_dir.name.split("-")[1]) != first_class:
            continue
        config, metrics, table, history = load_run(run_dir)
        method = config["run"]["method"]
        scores_id, scores_ood = split_scores(table, metrics["score"])
        histograms.append(score_histogram(scores_id, scores_ood, metrics["score"], title=f"{method}, class {first_class}:"))
        curves[method] = (scores_id, scores_ood)
        histories[method] = history
    figures = histograms + [roc_figure(curves, f"ROC, class {first_class}, ID = positive"), norm_trajectory(histories)]
    path = Path(out) if out else root / "report.html"
    _write_html(path, _page(title or f"ood-explain results: {root}", parts + _figures_html(figures)))
    return path
