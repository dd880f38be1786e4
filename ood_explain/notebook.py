"""Helpers behind the notebooks: fast mode, where runs live, and load-or-train with per-epoch test scores.

The notebooks stay thin: a parameter cell picks the settings, :func:`config` turns them into a
:class:`~ood_explain.experiments.RunConfig` whose run folder is named after those settings, and
:func:`load_or_run` trains only when that folder holds no finished run (an interrupted one resumes from
its checkpoint). While training, :class:`EpochTracker` scores a fixed subset of the test set after
selected epochs and writes ``epoch_scores.csv`` into the run folder: the data behind the epoch slider of
:class:`ood_explain.widgets.NormDashboard` and the ID-vs-OOD norm trajectories.

Environment variables: ``OOD_EXPLAIN_FAST=1`` selects fast mode (the ``smoke`` preset; CI sets it),
``OOD_EXPLAIN_RUNS`` overrides the runs folder (default ``<repo>/runs/notebooks``), ``OOD_EXPLAIN_DATA``
is the data folder (see :mod:`ood_explain.data`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data, scores
from .experiments import RunConfig, limit, pick_device, resolve, run_experiment
from .models import ContrastiveModel, build_model
from .train import autocast_dtype, load_checkpoint

TRACK_LIMIT = 300  # test images per side (ID, OOD) scored after tracked epochs
TRACK_VIEWS = 4  # random views for the ensemble scores of tracked epochs
TRACK_POINTS = 12  # about this many tracked epochs per run


def fast_mode() -> bool:
    """True when the environment variable ``OOD_EXPLAIN_FAST`` is set to 1/true/yes (CI sets it)."""
    return os.environ.get("OOD_EXPLAIN_FAST", "").strip().lower() in ("1", "true", "yes", "on")


def setup(threads: int | None = None, seed: int = 0) -> dict:
    """Prepare a notebook kernel: torch threads (`threads`, else $OOD_EXPLAIN_THREADS, else 1) and a
    seeded global RNG. Returns the settings it used, for the notebook to print.

    Why one thread by default: the notebooks train small models whose many tiny operations make
    multi-threaded PyTorch spin-wait when the cores are shared with another job; on 2 busy cores we
    measured one thread about 7x faster than two (digits, lite preset: 16 s vs 108 s). On an idle
    machine, set OOD_EXPLAIN_THREADS=2 (or more) to use more cores."""
    threads = int(threads or os.environ.get("OOD_EXPLAIN_THREADS") or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    return {"fast": fast_mode(), "preset": default_preset(), "threads": threads, "runs": str(runs_root()),
            "data": str(data.resolve_data_root())}


def default_preset() -> str:
    """``smoke`` in fast mode, ``lite`` otherwise (``paper`` is for GPUs and is always chosen by hand)."""
    return "smoke" if fast_mode() else "lite"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding pyproject.toml,
    else the working directory. Notebooks run inside notebooks/, so their runs land in the repository."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists():
            return folder
    return here


def runs_root() -> Path:
    """Where notebook runs live: $OOD_EXPLAIN_RUNS, else ``<repo>/runs/notebooks`` (git-ignored)."""
    return Path(os.environ.get("OOD_EXPLAIN_RUNS") or repo_root() / "runs" / "notebooks").expanduser()


def settings_key(config: RunConfig) -> str:
    """A short hash of every setting that changes the result (the output folder and device excluded)."""
    fields = dataclasses.asdict(resolve(config))
    for name in ("out", "device", "data_root", "download", "compile"):
        fields.pop(name, None)
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]


def config(method: str, normal_class: int = 0, dataset: str = "digits", preset: str | None = None,
           protocol: str = "one-vs-rest", oe: str | None = None, **overrides) -> RunConfig:
    """A RunConfig for the notebooks whose run folder is named after its settings:
    ``<runs>/<preset>/<dataset>-<protocol>/<method>[-<oe>][-<k>shot]/class-<c>-<hash>``.
    The same settings in two notebooks share one run; changing any setting gives a new folder."""
    preset = preset or default_preset()
    base = RunConfig(dataset=dataset, protocol=protocol, normal_class=normal_class, method=method,
                     oe=oe if method != "simclr" else None, preset=preset, **overrides)
    name = method + (f"-{oe.replace(':', '_').replace('/', '_')}" if base.oe else "")
    name += f"-{base.oe_shots}shot" if base.oe_shots else ""
    out = runs_root() / preset / f"{dataset}-{protocol}" / name / f"class-{normal_class}-{settings_key(base)}"
    return dataclasses.replace(base, out=str(out))


# ------------------------------------------------------------------------------------ tracked epochs


def tracked_epochs(epochs: int, points: int = TRACK_POINTS) -> list[int]:
    """About `points` epochs spread over 1..epochs, always including the first and the last."""
    every = max(1, round(epochs / points))
    return sorted({1, epochs, *range(every, epochs + 1, every)})


class EpochTracker:
    """The ``on_epoch_end`` callback of :func:`load_or_run`: after each tracked epoch, score a fixed
    subset of ID and OOD test images (and a training sample for the nearest-neighbour scores) and
    append one row per test image to ``epoch_scores.csv`` (columns epoch, index, is_id, label, scores)."""

    def __init__(self, config: RunConfig, limit_per_side: int = TRACK_LIMIT, views: int = TRACK_VIEWS) -> None:
        self.config = resolve(config)
        self.path = Path(self.config.out) / "epoch_scores.csv"
        self.epochs = set(tracked_epochs(self.config.epochs))
        self.views = min(views, self.config.views or 0)
        self.device = pick_device(self.config.device)
        c = self.config
        train_set = data.load_dataset(c.dataset, "train", c.data_root, c.download, c.image_size)
        test_set = data.load_dataset(c.dataset, "test", c.data_root, c.download, c.image_size)
        split = data.make_split(train_set, test_set, c.protocol, c.normal_class)
        id_test = limit(split.id_test, limit_per_side, self.config.seed)
        ood_test = limit(split.ood_test, limit_per_side, self.config.seed + 1)
        self.images = torch.cat([id_test.images, ood_test.images]).to(self.device)
        self.labels = torch.cat([id_test.labels, ood_test.labels]).numpy()
        self.is_id = np.concatenate([np.ones(len(id_test), int), np.zeros(len(ood_test), int)])
        self.train_images = limit(split.id_train, limit_per_side, self.config.seed + 2).images.to(self.device)

    def score(self, model: ContrastiveModel) -> dict[str, np.ndarray]:
        """Every score of the tracked test images under `model` (leaves the model in eval mode)."""
        dtype = autocast_dtype(self.config.precision, self.device, model.is_resnet)
        train = scores.extract_features(model, self.train_images, seed=self.config.seed, autocast=dtype)
        test = scores.extract_features(model, self.images, views=self.views, seed=self.config.seed,
                                       autocast=dtype)
        return scores.all_scores(test, train)

    def __call__(self, epoch: int, model: ContrastiveModel, row: dict | None = None) -> None:
        if epoch not in self.epochs:
            return
        table = pd.DataFrame({"epoch": epoch, "index": np.arange(len(self.is_id)), "is_id": self.is_id,
                              "label": self.labels, **self.score(model)})
        if self.path.exists():  # a resumed run: replace rows of epochs scored before the interruption
            previous = pd.read_csv(self.path)
            table = pd.concat([previous[previous["epoch"] != epoch], table])
        table.to_csv(self.path, index=False, float_format="%.6g")


# ------------------------------------------------------------------------------------------ load-or-run


@dataclass
class Run:
    """A finished run folder, loaded: settings, metrics, per-sample test scores, training history and
    (when tracked) the per-epoch scores of a test subset."""

    path: Path
    config: dict
    metrics: dict
    scores: pd.DataFrame
    history: pd.DataFrame
    epoch_scores: pd.DataFrame | None
    trained_now: bool = False

    @property
    def method(self) -> str:
        return self.config["run"]["method"]

    @property
    def normal_class(self) -> int:
        return int(self.config["run"]["normal_class"])

    @property
    def label(self) -> str:
        """e.g. ``oecl (OE photos)``: the method, with its OE source when it has one."""
        oe = self.config["run"].get("oe")
        shots = self.config["run"].get("oe_shots")
        if self.method in ("simclr", "self-oecl") or not oe:
            return self.method
        return f"{self.method} (OE {oe}{f', {shots}-shot' if shots else ''})"

    def split(self, score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ID scores, OOD scores) of one score column of scores.csv (default: the main score)."""
        column = score or self.metrics["score"]
        is_id = self.scores["is_id"].to_numpy().astype(bool)
        values = self.scores[column].to_numpy()
        return values[is_id], values[~is_id]

    def auroc(self, score: str | None = None) -> float:
        """AUROC of one score (default: the main score)."""
        return float(self.metrics["scores"][score or self.metrics["score"]]["auroc"])

    def epochs_table(self) -> pd.DataFrame:
        """Per-epoch scores: epoch_scores.csv when the run was tracked, else the final scores.csv as
        the last epoch (so a run made with the CLI still works in the dashboard)."""
        if self.epoch_scores is not None and len(self.epoch_scores):
            return self.epoch_scores
        table = self.scores.copy()
        table.insert(0, "epoch", int(self.metrics["epochs"]))
        return table

    def run_config(self) -> RunConfig:
        """The resolved RunConfig this run was made with."""
        fields = {k: v for k, v in self.config["run"].items() if k in RunConfig.__dataclass_fields__}
        return RunConfig(**fields)

    def model(self, device: str = "cpu") -> ContrastiveModel:
        """The trained model, loaded from checkpoint.pt (eval mode)."""
        config = self.run_config()
        state = load_checkpoint(self.path / "checkpoint.pt", device)
        channels = state["model"]["mean"].shape[1]
        mean, std = data.NORMALIZATION.get(config.dataset, (None, None))
        model = build_model(config.arch, channels, mean, std, with_classifier=config.method == "bce")
        model.load_state_dict(state["model"])
        return model.to(device).eval()


def is_finished(config: RunConfig) -> bool:
    """True when the run folder of `config` holds metrics.json."""
    return (Path(config.out) / "metrics.json").exists()


def load_run(path: str | Path, trained_now: bool = False) -> Run:
    """Load a finished run folder into a :class:`Run`."""
    path = Path(path)
    names = ("config.json", "metrics.json", "scores.csv", "history.csv")
    missing = [name for name in names if not (path / name).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a finished run folder: missing {', '.join(missing)}")
    epoch_file = path / "epoch_scores.csv"
    return Run(path, json.loads((path / "config.json").read_text()), json.loads((path / "metrics.json").read_text()),
               pd.read_csv(path / "scores.csv"), pd.read_csv(path / "history.csv"),
               pd.read_csv(epoch_file) if epoch_file.exists() else None, trained_now)


def load_or_run(config: RunConfig, track: bool = True, progress: bool = True, verbose: bool = True) -> Run:
    """Load the finished run of `config`, or train it first (resuming from a checkpoint when one
    exists). With `track`, the test subset is scored at about a dozen epochs spread over the training
    (:func:`tracked_epochs`; epoch_scores.csv)."""
    out = Path(config.out)
    if is_finished(config):
        run = load_run(out)
        if verbose:
            print(f"loaded  {run.label:<28} class {run.normal_class}: AUROC {run.auroc():.3f}  ({out.name})")
        return run
    started = time.perf_counter()
    resuming = (out / "checkpoint.pt").exists()
    tracker = EpochTracker(config) if track else None
    if resuming and tracker is not None and not (out / "epoch_scores.csv").exists():
        tracker = None  # an untracked run that was interrupted: finish it untracked
    run_experiment(config, progress=progress, on_epoch_end=tracker)
    run = load_run(out, trained_now=True)
    if verbose:
        verb = "resumed" if resuming else "trained"
        print(f"{verb} {run.label:<28} class {run.normal_class}: AUROC {run.auroc():.3f}  "
              f"({time.perf_counter() - started:.0f} s)")
    return run


def load_or_run_many(configs: list[RunConfig], **kwargs) -> list[Run]:
    """:func:`load_or_run` for each config, in order."""
    return [load_or_run(c, **kwargs) for c in configs]


# ----------------------------------------------------------------------------------------- summaries


def auroc_table(runs: list[Run], score_names: list[str] | None = None, percent: bool = True) -> pd.DataFrame:
    """One row per run (its label and class), one column per score: AUROC (in % by default, 1 decimal)."""
    rows = {}
    for run in runs:
        names = score_names or list(run.metrics["scores"])
        rows[(run.label, run.normal_class)] = {n: run.metrics["scores"][n]["auroc"] for n in names
                                               if n in run.metrics["scores"]}
    table = pd.DataFrame(rows).T
    table.index.names = ["run", "class"]
    return (table * 100).round(1) if percent else table


def norm_trajectories(run: Run, score: str = "norm") -> pd.DataFrame:
    """Per tracked epoch: mean of `score` (default ‖z‖) over ID and over OOD test images, and the AUROC."""
    from .metrics import auroc

    rows = []
    for epoch, part in run.epochs_table().groupby("epoch"):
        is_id = part["is_id"].to_numpy().astype(bool)
        values = part[score].to_numpy()
        rows.append({"epoch": epoch, "id_mean": values[is_id].mean(), "ood_mean": values[~is_id].mean(),
                     "auroc": auroc(values[is_id], values[~is_id])})
    return pd.DataFrame(rows)


def pick_oe(preferred: str, fallback: str = "photos", root: str | None = None) -> str:
    """`preferred` (a dataset name) if its files are in the data folder, else `fallback` with a note."""
    try:
        data.load_dataset(preferred, "test", root)
        return preferred
    except (data.DatasetNotFoundError, FileNotFoundError, RuntimeError):
        print(f"OE dataset {preferred!r} is not in {data.resolve_data_root(root)}; using {fallback!r} instead")
        return fallback


# ---------------------------------------------------------------------------------- teaching demos


def nt_xent_by_hand(z: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent written out step by step (the formula of notebook 01), for comparison with
    :func:`ood_explain.losses.nt_xent`: normalize, cosine similarities, drop the anchor itself,
    -log softmax at the positive, mean over the 2N anchors."""
    n = z.shape[0] // 2
    z_hat = z / z.norm(dim=1, keepdim=True)
    logits = z_hat @ z_hat.T / temperature
    logits = logits - torch.diag(torch.full((2 * n,), float("inf"), dtype=z.dtype))  # k != i
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    log_prob = logits.log_softmax(dim=1)
    return -log_prob[torch.arange(2 * n), positive].mean()


def direction_descent(z0, target, lr: float = 0.5, steps: int = 30) -> pd.DataFrame:
    """Gradient descent on a toy loss that sees only the direction of z: L(z) = -cos(z, target).
    Returns one row per step: step, x, y (first two coordinates), norm, loss, and the cosine between
    z and its gradient (always 0: the gradient is tangent to the sphere)."""
    z = torch.tensor(z0, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(target, dtype=torch.float64)
    rows = []
    for step in range(steps + 1):
        loss = -torch.nn.functional.cosine_similarity(z, target, dim=0)
        (grad,) = torch.autograd.grad(loss, z)
        cos = float(torch.dot(grad, z.detach()) / (grad.norm() * z.detach().norm() + 1e-30))
        point = z.detach()
        rows.append({"step": step, "x": float(point[0]), "y": float(point[1]), "norm": float(point.norm()),
                     "loss": float(loss.detach()), "cos_z_grad": cos})
        with torch.no_grad():
            z -= lr * grad
    return pd.DataFrame(rows)


def nt_xent_descent(n: int = 16, d: int = 32, lrs=(0.5, 2.0, 8.0), steps: int = 40, seed: int = 0) -> pd.DataFrame:
    """Treat 2n features z (2n, d) as free parameters and run gradient descent on NT-Xent (tau 0.5).
    Returns step, lr, mean ‖z‖ and loss per step: every norm grows, faster for larger steps."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(2 * n, d, generator=generator, dtype=torch.float64)
    start[n:] = start[:n] + 0.5 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    start = start / start.norm(dim=1, keepdim=True)  # every feature starts on the unit sphere
    rows = []
    for lr in lrs:
        z = start.clone().requires_grad_(True)
        for step in range(steps + 1):
            from .losses import nt_xent

            loss = nt_xent(z, 0.5)
            (grad,) = torch.autograd.grad(loss, z)
            rows.append({"step": step, "lr": lr, "mean_norm": float(z.detach().norm(dim=1).mean()), "loss": float(loss)})
            with torch.no_grad():
                z -= lr * grad * (2 * n)  # undo the 1/(2n) of the mean, so each row moves like one sample
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- figures


def _go():
    import plotly.graph_objects as go

    return go


def direction_descent_figure(path: pd.DataFrame, target) -> "object":
    """Two panels: the path of z in the plane (with the target direction), and ‖z‖ per step."""
    from plotly.subplots import make_subplots

    go = _go()
    figure = make_subplots(rows=1, cols=2, subplot_titles=("z during gradient descent", "‖z‖ per step"))
    figure.add_trace(go.Scatter(x=path["x"], y=path["y"], mode="lines+markers", name="z (path)"), 1, 1)
    scale = float(path["norm"].max()) * 1.1
    t = np.asarray(target, dtype=float)
    t = t / np.linalg.norm(t) * scale
    figure.add_trace(go.Scatter(x=[0, t[0]], y=[0, t[1]], mode="lines", name="target direction",
                                line=dict(dash="dash", color="gray")), 1, 1)
    figure.add_trace(go.Scatter(x=path["step"], y=path["norm"], mode="lines+markers", name="‖z‖"), 1, 2)
    figure.update_xaxes(title_text="z₁", row=1, col=1)
    figure.update_yaxes(title_text="z₂", row=1, col=1, scaleanchor="x", scaleratio=1)
    figure.update_xaxes(title_text="gradient step", row=1, col=2)
    figure.update_yaxes(title_text="‖z‖", row=1, col=2)
    figure.update_layout(title="A loss that only sees the direction of z still makes ‖z‖ grow",
                         legend_title="curve", height=420)
    return figure


def nt_xent_descent_figure(table: pd.DataFrame) -> "object":
    """Mean ‖z‖ per gradient step on NT-Xent, one line per step size."""
    go = _go()
    figure = go.Figure()
    for lr, part in table.groupby("lr"):
        figure.add_trace(go.Scatter(x=part["step"], y=part["mean_norm"], mode="lines", name=f"step size {lr:g}"))
    figure.update_layout(title="NT-Xent on free features: the mean ‖z‖ only grows", xaxis_title="gradient step",
                         yaxis_title="mean ‖z‖ over the batch", legend_title="step size", height=380)
    return figure


def temperature_figure(temperatures=(0.1, 0.2, 0.5, 1.0), negatives: int = 14) -> "object":
    """NT-Xent of one anchor as a function of its positive's cosine similarity, with `negatives`
    negatives at cosine 0 (left), and the softmax weight of a hard negative at cosine 0.8 (right)."""
    from plotly.subplots import make_subplots

    go = _go()
    s = np.linspace(-1, 1, 101)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss of one anchor", "weight of a hard negative"))
    for tau in temperatures:
        loss = -s / tau + np.log(np.exp(s / tau) + negatives * np.exp(0.0))
        figure.add_trace(go.Scatter(x=s, y=loss, mode="lines", name=f"τ = {tau:g}", legendgroup=str(tau)), 1, 1)
        hard = np.exp(0.8 / tau) / (np.exp(s / tau) + np.exp(0.8 / tau) + (negatives - 1))
        figure.add_trace(go.Scatter(x=s, y=hard, mode="lines", name=f"τ = {tau:g}", legendgroup=str(tau),
                                    showlegend=False), 1, 2)
    figure.update_xaxes(title_text="cosine similarity to the positive", row=1, col=1)
    figure.update_xaxes(title_text="cosine similarity to the positive", row=1, col=2)
    figure.update_yaxes(title_text="ℓ_i", row=1, col=1)
    figure.update_yaxes(title_text="softmax weight of the hard negative", row=1, col=2)
    figure.update_layout(title="Temperature: small τ sharpens the softmax and focuses on hard negatives",
                         legend_title="temperature", height=400)
    return figure


def score_histograms(runs: list[Run], score: str = "norm", title: str = "") -> "object":
    """One panel per run: histograms of `score` for ID and OOD test images, AUROC in each panel title."""
    from plotly.subplots import make_subplots

    from .metrics import auroc
    from .viz import ID_COLOR, OOD_COLOR, SCORE_LABELS

    go = _go()
    titles = [f"{run.label}, class {run.normal_class}: AUROC {auroc(*run.split(score)):.3f}" for run in runs]
    figure = make_subplots(rows=1, cols=len(runs), subplot_titles=titles)
    for col, run in enumerate(runs, start=1):
        for values, name, color in zip(run.split(score), ("ID test", "OOD test"), (ID_COLOR, OOD_COLOR)):
            figure.add_trace(go.Histogram(x=values, name=name, marker_color=color, opacity=0.6, nbinsx=40,
                                          histnorm="probability density", legendgroup=name,
                                          showlegend=col == 1), 1, col)
        figure.update_xaxes(title_text=SCORE_LABELS.get(score, score), row=1, col=col)
    figure.update_yaxes(title_text="density", row=1, col=1)
    figure.update_layout(barmode="overlay", title=title or f"{SCORE_LABELS.get(score, score)}: ID vs OOD test images",
                         legend_title="test set", height=400)
    return figure


def trajectory_figure(runs: list[Run], score: str = "norm") -> "object":
    """Mean `score` (default ‖z‖) of ID and OOD test images per tracked epoch, one colour per run
    (ID solid, OOD dashed); the AUROC per epoch in a second panel."""
    from plotly.subplots import make_subplots

    go = _go()
    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean ‖z‖ of test images", "AUROC of ‖z‖"))
    palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for i, run in enumerate(runs):
        color = palette[i % len(palette)]
        table = norm_trajectories(run, score)
        figure.add_trace(go.Scatter(x=table["epoch"], y=table["id_mean"], mode="lines+markers", line=dict(color=color),
                                    name=f"{run.label}: ID test"), 1, 1)
        figure.add_trace(go.Scatter(x=table["epoch"], y=table["ood_mean"], mode="lines+markers",
                                    line=dict(color=color, dash="dash"), name=f"{run.label}: OOD test"), 1, 1)
        figure.add_trace(go.Scatter(x=table["epoch"], y=table["auroc"], mode="lines+markers", line=dict(color=color),
                                    name=f"{run.label}: AUROC", showlegend=True), 1, 2)
    figure.add_hline(y=0.5, line_dash="dot", line_color="gray", row=1, col=2)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="mean ‖z‖", row=1, col=1)
    figure.update_yaxes(title_text="AUROC (ID = positive)", row=1, col=2, range=[0, 1.02])
    figure.update_layout(title="‖z‖ of ID and OOD test images during training", legend_title="run: test set",
                         height=420)
    return figure


def auroc_bars(table: pd.DataFrame, title: str = "AUROC per class", value_name: str = "AUROC (%)") -> "object":
    """Grouped bars from a table (rows: groups on the x axis, columns: bars), with the chance line."""
    go = _go()
    figure = go.Figure()
    for column in table.columns:
        figure.add_trace(go.Bar(x=[str(i) for i in table.index], y=table[column], name=str(column)))
    chance = 50 if "%" in value_name else 0.5
    figure.add_hline(y=chance, line_dash="dot", line_color="gray", annotation_text="chance")
    figure.update_layout(barmode="group", title=title, xaxis_title=table.index.name or "",
                         yaxis_title=value_name, legend_title=table.columns.name or "", height=400)
    return figure
