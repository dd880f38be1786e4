"""The numbers the notebooks' prose quotes, measured over seeds.

Notebooks 00-05 train small lite-preset runs on scikit-learn's digits with seed 0; one run proves
nothing, so their prose quotes this study instead. ``ood-explain claims --seeds 3`` trains every run the
prose talks about for each seed (the notebooks' own configs: :func:`ood_explain.notebook.config`, one torch
thread) and writes ``runs.csv`` (one row per run and seed: AUROCs and norm trajectories) and
``claims.csv`` / ``claims.md`` (each quoted quantity: per-seed values, mean, std, min and max).
``tests/test_notebooks_prose.py`` fails when a notebook quotes a number this file does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import notebook as nb
from .diagnostics import batchnorm_trace
from .experiments import Run, RunConfig, load_data
from .scores import extract_features
from .sweeps import seed_list
from .viz import norm_trajectories

DATASET = "digits"
PRESET = "lite"


@dataclass(frozen=True)
class NotebookRun:
    """One run a notebook trains (seed aside). `key` names it in runs.csv; `settings`: further RunConfig
    fields (e.g. ``(("weight_decay", 0.0),)``)."""

    key: str
    method: str
    normal_class: int
    oe: str | None = None
    oe_shots: int | None = None
    protocol: str = "one-vs-rest"
    settings: tuple[tuple[str, object], ...] = ()

    def config(self, seed: int, root: Path) -> RunConfig:
        """This run's resolved config for `seed`, its folder under `root` (named as the notebooks name it)."""
        return nb.config(self.method, self.normal_class, dataset=DATASET, preset=PRESET, protocol=self.protocol,
                         oe=self.oe, oe_shots=self.oe_shots, seed=seed, root=root, **dict(self.settings))


NO_DECAY = (("weight_decay", 0.0),)
LOCO = (("epochs", 10), ("warmup_epochs", 2))  # notebook 05's shorter schedule
OE_SOURCES = {"photos": ("photos", None), "fashion": ("fashion-mnist", None), "mnist": ("mnist", None),
              "1shot": ("outlier-classes", 1), "10shot": ("outlier-classes", 10)}

RUNS: tuple[NotebookRun, ...] = (
    *(NotebookRun(f"simclr-{k}", "simclr", k) for k in range(10)),  # 00, 02 (all digits), 03, 04
    NotebookRun("simclr-0-no-decay", "simclr", 0, settings=NO_DECAY),  # 02
    *(NotebookRun(f"oecl-{name}-0", "oecl", 0, source, shots) for name, (source, shots) in OE_SOURCES.items()),
    NotebookRun("oecl-photos-0-no-decay", "oecl", 0, "photos", settings=NO_DECAY),  # 03
    *(NotebookRun(f"self-oecl-{k}", "self-oecl", k) for k in (0, 6, 8)),  # 04
    *(NotebookRun(f"oecl-photos-{k}", "oecl", k, "photos") for k in (6, 8)),  # 04
    *(NotebookRun(f"{m}-loco-{k}", m, k, "photos" if m == "oecl" else None, protocol="leave-one-out", settings=LOCO)
      for k in (0, 1) for m in ("simclr", "oecl")),  # 05
)


# ----------------------------------------------------------------------------------------- one run's facts


def run_facts(run: Run) -> dict[str, float]:
    """What the prose may quote about one finished, tracked run: AUROCs (full test set) of ‖z‖, ‖mean z‖ and
    the mean ‖z‖² over views; the training-view ‖z‖ of ID (and OE) from history.csv; the final model's mean
    ‖z‖ (eval mode) of the training images as they are and of 4 augmented views of each; and the test
    subset's mean ‖z‖ and AUROC per tracked epoch from epoch_scores.csv."""
    history = run.history.set_index("epoch")
    warmup = run.config.warmup_epochs or 0
    after = history.loc[history.index > warmup, "id_norm"]
    facts = {"auroc_norm": run.auroc("norm"), "auroc_norm_of_mean": run.auroc("norm_of_mean"),
             "auroc_mean_sq_norm": run.auroc("mean_sq_norm"),
             "train_id_norm_final": history["id_norm"].iloc[-1], "train_id_norm_peak": history["id_norm"].max(),
             "train_id_norm_at_warmup": history["id_norm"].get(warmup, np.nan),
             "train_id_norm_low_after_warmup": after.min() if len(after) else np.nan,
             "train_oe_norm_final": history["oe_norm"].iloc[-1] if "oe_norm" in history else np.nan}
    facts |= training_norms(run)
    tracked = norm_trajectories(run)  # the tracked test subset (notebook runs are tracked)
    peak = tracked.loc[tracked["id_mean"].idxmax()]
    late = tracked[tracked["epoch"] > warmup]
    facts |= {"test_id_norm_peak": peak["id_mean"], "test_id_norm_peak_epoch": peak["epoch"],
              "test_id_norm_final": tracked["id_mean"].iloc[-1], "test_ood_norm_peak": tracked["ood_mean"].max(),
              "test_ood_norm_final": tracked["ood_mean"].iloc[-1],
              "tracked_auroc_low_after_warmup": late["auroc"].min() if len(late) else np.nan,
              "tracked_auroc_final": tracked["auroc"].iloc[-1]}
    return {name: float(value) for name, value in facts.items()}


def training_norms(run: Run, views: int = 4) -> dict[str, float]:
    """The final model's mean ‖z‖ (eval mode) over its ID training images: as they are (as a test image is
    scored), and over `views` augmented views of each (as the loss saw them)."""
    features = extract_features(run.model, load_data(run.config).split.id_train.images, views=views,
                                seed=run.config.seed)
    return {"eval_train_images_norm": features.z.norm(dim=1).mean().item(),
            "eval_train_views_norm": features.z_views.norm(dim=2).mean().item()}


TRACED = ("simclr-0", "oecl-photos-0")  # the runs notebooks 02 and 03 retrace with recomputed BatchNorm statistics


def batchnorm_facts(trace: pd.DataFrame, warmup: int) -> dict[str, float]:
    """From :func:`ood_explain.diagnostics.batchnorm_trace`: peak and final ID test ‖z‖, and the lowest and
    highest AUROC after the warm-up, with BatchNorm's running averages and with recomputed statistics."""
    late = trace[trace["epoch"] > warmup]
    return {f"bn_{kind}_{name}": float(value) for kind in ("running", "recomputed") for name, value in (
        ("id_peak", trace[f"{kind}_id"].max()), ("id_final", trace[f"{kind}_id"].iloc[-1]),
        ("auroc_low_after_warmup", late[f"{kind}_auroc"].min()),
        ("auroc_high_after_warmup", late[f"{kind}_auroc"].max()))}


# ---------------------------------------------------------------------------------------- quoted quantities


@dataclass(frozen=True)
class Claim:
    """A quantity a notebook's prose quotes: `per_seed` maps runs.csv to one value per seed; `scale` 100 for
    a percentage."""

    notebook: str
    name: str
    per_seed: Callable[[pd.DataFrame], pd.Series]
    scale: float = 1.0


def fact(key: str, column: str) -> Callable[[pd.DataFrame], pd.Series]:
    """One column of one run, per seed."""
    return lambda runs: runs[runs["key"] == key].set_index("seed")[column]


def count(keys: list[str], test: Callable[[pd.DataFrame, pd.DataFrame], pd.Series]
          ) -> Callable[[pd.DataFrame], pd.Series]:
    """Per seed, how many of the runs `keys` pass `test(chosen rows, all runs)` (a boolean per chosen row)."""
    def per_seed(runs: pd.DataFrame) -> pd.Series:
        chosen = runs[runs["key"].isin(keys)]
        return test(chosen, runs).groupby(chosen["seed"]).sum().astype(float)
    return per_seed


def below_chance(column: str) -> Callable[[pd.DataFrame, pd.DataFrame], pd.Series]:
    """Per row: its AUROC `column` below 50 % (an inverted score)."""
    return lambda chosen, runs: chosen[column] < 0.5


def beats(reference: Callable[[str], str], column: str) -> Callable[[pd.DataFrame, pd.DataFrame], pd.Series]:
    """Per row: its `column` above that of the run ``reference(key)`` with the same seed."""
    def test(chosen: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
        lookup = runs.set_index(["key", "seed"])[column]
        others = [lookup[(reference(key), seed)] for key, seed in zip(chosen["key"], chosen["seed"])]
        return chosen[column] > np.asarray(others)
    return test


def simclr_of_class(key: str) -> str:
    """The key of the SimCLR run on the class of run `key` (e.g. self-oecl-6 -> simclr-6)."""
    return "simclr-" + key.rsplit("-", 1)[1]


def _claims() -> list[Claim]:
    claims = [
        Claim("00", "SimCLR ‖z‖ AUROC, digit 0 (%)", fact("simclr-0", "auroc_norm"), 100),
        Claim("00", "OECL (photo OE) ‖z‖ AUROC, digit 0 (%)", fact("oecl-photos-0", "auroc_norm"), 100),
        Claim("02", "digits (of 10) where SimCLR's ‖z‖ is inverted (AUROC < 50 %)",
              count([f"simclr-{k}" for k in range(10)], below_chance("auroc_norm"))),
    ]
    for key, label in (("simclr-0", "weight decay 5e-4"), ("simclr-0-no-decay", "weight decay 0")):
        claims += [Claim("02", f"SimCLR digit 0, {label}: peak mean ‖z‖ of ID test images", fact(key, "test_id_norm_peak")),
                   Claim("02", f"SimCLR digit 0, {label}: epoch of that peak", fact(key, "test_id_norm_peak_epoch")),
                   Claim("02", f"SimCLR digit 0, {label}: final mean ‖z‖ of ID test images", fact(key, "test_id_norm_final")),
                   Claim("02", f"SimCLR digit 0, {label}: final mean ‖z‖ of OOD test images", fact(key, "test_ood_norm_final")),
                   Claim("02", f"SimCLR digit 0, {label}: ‖z‖ AUROC (%)", fact(key, "auroc_norm"), 100),
                   Claim("02", f"SimCLR digit 0, {label}: final training-view ‖z‖ (history)",
                         fact(key, "train_id_norm_final")),
                   Claim("02", f"SimCLR digit 0, {label}: final model, mean ‖z‖ of the training images as they are",
                         fact(key, "eval_train_images_norm")),
                   Claim("02", f"SimCLR digit 0, {label}: final model, mean ‖z‖ of augmented views of them",
                         fact(key, "eval_train_views_norm"))]
    claims += [Claim("02", "SimCLR digit 0: peak mean ‖z‖ of ID test images, BatchNorm running averages",
                     fact("simclr-0", "bn_running_id_peak")),
               Claim("02", "SimCLR digit 0: peak mean ‖z‖ of ID test images, recomputed BatchNorm statistics",
                     fact("simclr-0", "bn_recomputed_id_peak")),
               Claim("02", "SimCLR digit 0: final mean ‖z‖ of ID test images, recomputed BatchNorm statistics",
                     fact("simclr-0", "bn_recomputed_id_final")),
               Claim("02", "SimCLR digit 0: highest AUROC after the warm-up, BatchNorm running averages (%)",
                     fact("simclr-0", "bn_running_auroc_high_after_warmup"), 100),
               Claim("02", "SimCLR digit 0: highest AUROC after the warm-up, recomputed BatchNorm statistics (%)",
                     fact("simclr-0", "bn_recomputed_auroc_high_after_warmup"), 100),
               Claim("03", "OECL digit 0: lowest AUROC after the warm-up, BatchNorm running averages (%)",
                     fact("oecl-photos-0", "bn_running_auroc_low_after_warmup"), 100),
               Claim("03", "OECL digit 0: lowest AUROC after the warm-up, recomputed BatchNorm statistics (%)",
                     fact("oecl-photos-0", "bn_recomputed_auroc_low_after_warmup"), 100),
               Claim("03", "OECL digit 0: peak mean ‖z‖ of ID test images, BatchNorm running averages",
                     fact("oecl-photos-0", "bn_running_id_peak")),
               Claim("03", "OECL digit 0: peak mean ‖z‖ of ID test images, recomputed BatchNorm statistics",
                     fact("oecl-photos-0", "bn_recomputed_id_peak"))]
    claims += [Claim("03", f"OECL OE {name}, digit 0: ‖z‖ AUROC (%)", fact(f"oecl-{name}-0", "auroc_norm"), 100)
               for name in OE_SOURCES]
    claims += [Claim("03", f"OECL OE {name}, digit 0: ‖mean z‖ AUROC (%)", fact(f"oecl-{name}-0", "auroc_norm_of_mean"), 100)
               for name in OE_SOURCES]
    claims += [Claim("03", "OE sources (of 5) above SimCLR's ‖z‖ AUROC",
                     count([f"oecl-{name}-0" for name in OE_SOURCES],
                           beats(lambda key: "simclr-0", "auroc_norm")))]
    for key, label in (("oecl-photos-0", "weight decay 5e-4"), ("oecl-photos-0-no-decay", "weight decay 0")):
        claims += [Claim("03", f"OECL digit 0, {label}: training ID ‖z‖ at the end of the warm-up",
                         fact(key, "train_id_norm_at_warmup")),
                   Claim("03", f"OECL digit 0, {label}: lowest training ID ‖z‖ after the warm-up",
                         fact(key, "train_id_norm_low_after_warmup")),
                   Claim("03", f"OECL digit 0, {label}: final training ID ‖z‖", fact(key, "train_id_norm_final")),
                   Claim("03", f"OECL digit 0, {label}: final training OE ‖z‖", fact(key, "train_oe_norm_final")),
                   Claim("03", f"OECL digit 0, {label}: lowest tracked AUROC after the warm-up (%)",
                         fact(key, "tracked_auroc_low_after_warmup"), 100),
                   Claim("03", f"OECL digit 0, {label}: ‖z‖ AUROC (%)", fact(key, "auroc_norm"), 100),
                   Claim("03", f"OECL digit 0, {label}: ‖mean z‖ AUROC (%)", fact(key, "auroc_norm_of_mean"), 100),
                   Claim("03", f"OECL digit 0, {label}: mean ‖z‖² over views AUROC (%)",
                         fact(key, "auroc_mean_sq_norm"), 100)]
    for k in (0, 6, 8):
        for method, key in (("SimCLR", f"simclr-{k}"), ("self-OECL", f"self-oecl-{k}"), ("OECL", f"oecl-photos-{k}")):
            claims.append(Claim("04", f"{method} ‖mean z‖ AUROC, digit {k} (%)", fact(key, "auroc_norm_of_mean"), 100))
    for k in (0, 6, 8):
        claims += [Claim("04", f"self-OECL digit {k}: training ID ‖z‖ at the end of the warm-up",
                         fact(f"self-oecl-{k}", "train_id_norm_at_warmup")),
                   Claim("04", f"self-OECL digit {k}: final training ID ‖z‖", fact(f"self-oecl-{k}", "train_id_norm_final")),
                   Claim("04", f"self-OECL digit {k}: final training OE ‖z‖", fact(f"self-oecl-{k}", "train_oe_norm_final"))]
    claims.append(Claim("04", "digits (of 3) where self-OECL's ‖mean z‖ beats SimCLR's",
                        count([f"self-oecl-{k}" for k in (0, 6, 8)], beats(simclr_of_class, "auroc_norm_of_mean"))))
    for k in (0, 1):
        for method in ("simclr", "oecl"):
            claims.append(Claim("05", f"LOCO held-out {k}, {method}: ‖z‖ AUROC (%)",
                                fact(f"{method}-loco-{k}", "auroc_norm"), 100))
    return claims


CLAIMS = _claims()


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: notebook, claim, per-seed values, mean, sample std, min and max (scaled)."""
    rows = []
    for claim in CLAIMS:
        values = claim.per_seed(runs).sort_index() * claim.scale
        rows.append({"notebook": claim.notebook, "claim": claim.name, "n": len(values),
                     "values": " ".join(f"{v:.4g}" for v in values), "mean": values.mean(),
                     "std": values.std(ddof=1), "min": values.min(), "max": values.max()})
    return pd.DataFrame(rows)


def notebook_claims(seeds: int | str | list[int] = 3, out: str | Path = "results/notebook-claims",
                    runs_root: str | Path = "runs/notebook-claims", progress: bool = False) -> pd.DataFrame:
    """Train (or load) every run of :data:`RUNS` for each seed, then write runs.csv, claims.csv and claims.md
    into `out`; returns the claims table."""
    out, runs_root = Path(out), Path(runs_root)
    out.mkdir(parents=True, exist_ok=True)
    nb.setup()  # one torch thread, as in the notebooks: the same seed gives the notebook's digits
    rows = []
    for seed in seed_list(seeds):
        for spec in RUNS:
            run = nb.load_or_run(spec.config(seed, runs_root), progress=progress)
            facts = run_facts(run)
            if spec.key in TRACED:
                trace = batchnorm_trace(run.config, nb.tracked_epochs(run.config.epochs))
                facts |= batchnorm_facts(trace, run.config.warmup_epochs or 0)
            rows.append({"key": spec.key, "seed": seed, **facts})
    runs = pd.DataFrame(rows)
    runs.to_csv(out / "runs.csv", index=False, float_format="%.5g")
    table = summarize(runs)
    table.to_csv(out / "claims.csv", index=False, float_format="%.4f")
    (out / "claims.md").write_text(format_claims(table))
    return table


def format_claims(table: pd.DataFrame) -> str:
    """claims.md: one section per notebook, each claim as mean ± std and min–max over seeds."""
    lines = ["# Numbers quoted in the notebooks' prose", "",
             "Lite preset, scikit-learn digits, one torch thread, seeds " + ", ".join(map(str, range(int(table['n'].max()))))
             + ". Made by `ood-explain claims --seeds 3`; per run and seed: runs.csv.", ""]
    for notebook, part in table.groupby("notebook"):
        lines += [f"## Notebook {notebook}", "", "| claim | seeds | mean ± std | min – max |", "|:--|:--|--:|--:|"]
        lines += [f"| {row.claim} | {row['values']} | {row['mean']:.1f} ± {row['std']:.1f} | {row['min']:.1f} – {row['max']:.1f} |"
                  for _, row in part.iterrows()]
        lines.append("")
    return "\n".join(lines)


