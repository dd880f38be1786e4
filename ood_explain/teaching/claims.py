"""The numbers and statements the notebooks' prose makes, measured over seeds, and "your run" beside them.

Notebooks 00-05 train small lite-preset runs on scikit-learn's digits with seed 0; one run proves
nothing, and a student's seed 0 is not ours (CPU kernels differ between processors). So the prose quotes
this study: ``ood-explain claims --seeds 10`` trains every run the prose talks about for each seed (the
notebooks' own configs: :func:`ood_explain.teaching.notebook.config`, one torch thread) and writes

* ``runs.csv``: one row per run and seed (AUROCs, norm trajectories, BatchNorm traces);
* ``claims.csv`` / ``claims.md``: each quoted quantity (:class:`Claim`) with its per-seed values, mean,
  std, min and max. The prose quotes min–max: for n exchangeable runs, a new run lands inside their
  min–max with probability (n − 1)/(n + 1), 9 in 11 for 10 seeds (:func:`coverage`);
* ``statements.csv``: each qualitative statement (:class:`Statement`: which method wins, which way a curve
  goes) and the seeds it holds in; the prose says "in k of n seeds".

In a notebook, :func:`your_run` prints the student's values beside those ranges and statements, and with
``$OOD_EXPLAIN_CLAIMS_LOG`` set appends them to that file (JSON lines), which ``ood-explain
check-notebooks`` (:mod:`ood_explain.teaching.notebook_check`) reads. ``tests/test_notebooks_prose.py`` fails when a
notebook quotes a number or a count the files do not hold.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ood_explain.core.scores import extract_features
from ood_explain.experiments.runs import Run, RunConfig, load_data, model_settings
from ood_explain.experiments.sweeps import seed_list
from ood_explain.teaching import notebook as nb
from ood_explain.teaching.diagnostics import batchnorm_trace, trace_config
from ood_explain.teaching.viz import norm_trajectories

DATASET = "digits"
PRESET = "lite"
RESULTS = Path(__file__).resolve().parents[2] / "results" / "notebook-claims"  # where `ood-explain claims` writes
# What a notebook's "your run" cells compare with: claims.csv and statements.csv shipped inside the package (in
# the repository, links to the files in RESULTS; a wheel holds copies), so they work outside the repository.
EXPECTED = Path(__file__).resolve().parent / "notebook_claims"
LOG_VARIABLE = "OOD_EXPLAIN_CLAIMS_LOG"
ROUNDING = 1e-4  # runs.csv keeps 5 significant digits, claims.csv 4 decimals: a value on a bound counts as inside


def within(value: float, low: float, high: float) -> bool:
    """`value` inside [low, high], allowing for the rounding of the files the range comes from."""
    return low - ROUNDING * (1 + abs(low)) <= value <= high + ROUNDING * (1 + abs(high))


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
        return nb.config(
            self.method,
            self.normal_class,
            dataset=DATASET,
            preset=PRESET,
            protocol=self.protocol,
            oe=self.oe,
            oe_shots=self.oe_shots,
            seed=seed,
            root=root,
            **dict(self.settings),
        )


NO_DECAY = (("weight_decay", 0.0),)
LOCO = (("epochs", 10), ("warmup_epochs", 2))  # notebook 05's shorter schedule
OE_SOURCES = {
    "photos": ("photos", None),
    "fashion": ("fashion-mnist", None),
    "mnist": ("mnist", None),
    "1shot": ("outlier-classes", 1),
    "10shot": ("outlier-classes", 10),
}

RUNS: tuple[NotebookRun, ...] = (
    *(NotebookRun(f"simclr-{k}", "simclr", k) for k in range(10)),  # 00, 02 (all digits), 03, 04
    NotebookRun("simclr-0-no-decay", "simclr", 0, settings=NO_DECAY),  # 02
    *(NotebookRun(f"oecl-{name}-0", "oecl", 0, source, shots) for name, (source, shots) in OE_SOURCES.items()),
    NotebookRun("oecl-photos-0-no-decay", "oecl", 0, "photos", settings=NO_DECAY),  # 03
    *(NotebookRun(f"self-oecl-{k}", "self-oecl", k) for k in (0, 6, 8)),  # 04
    *(NotebookRun(f"oecl-photos-{k}", "oecl", k, "photos") for k in (6, 8)),  # 04
    *(
        NotebookRun(f"{m}-loco-{k}", m, k, "photos" if m == "oecl" else None, protocol="leave-one-out", settings=LOCO)
        for k in (0, 1)
        for m in ("simclr", "oecl")
    ),  # 05
)


def key_of(run: Run) -> str | None:
    """The key of :data:`RUNS` whose settings (seed aside) `run` was trained with; None for any other run
    (another preset, class or setting, e.g. fast mode)."""
    settings = {k: v for k, v in model_settings(run.config).items() if k != "seed"}
    for spec in RUNS:
        try:
            candidate = model_settings(spec.config(run.config.seed, Path(".")))
        except ValueError:  # e.g. an OE source this machine does not have
            continue
        if {k: v for k, v in candidate.items() if k != "seed"} == settings:
            return spec.key
    return None


# ----------------------------------------------------------------------------------------- one run's facts


def run_facts(run: Run, with_training_norms: bool = True) -> dict[str, float]:
    """What the prose may quote about one finished, tracked run: AUROCs (full test set) of every score;
    the training-view ‖z‖ of ID (and OE) from history.csv; the final model's mean ‖z‖ (eval mode) of the
    training images as they are and of 4 augmented views of each; and the test subset's mean ‖z‖ and
    AUROC per tracked epoch from epoch_scores.csv. Without `with_training_norms` (a second forward pass
    over the training images) those two facts are NaN."""
    history = run.history.set_index("epoch")
    warmup = run.config.warmup_epochs or 0
    after = history.loc[history.index > warmup, "id_norm"]
    has_oe = "oe_norm" in history and history["oe_norm"].notna().any()
    facts = {
        f"auroc_{name}": run.auroc(name) if name in run.metrics["scores"] else np.nan
        for name in ("norm", "norm_of_mean", "mean_sq_norm", "cosine_nn", "knn")
    }
    facts |= {
        "train_id_norm_final": history["id_norm"].iloc[-1],
        "train_id_norm_peak": history["id_norm"].max(),
        "train_id_norm_at_warmup": history["id_norm"].get(warmup, np.nan),
        "train_id_norm_low_after_warmup": after.min() if len(after) else np.nan,
        "train_oe_norm_at_warmup": history["oe_norm"].get(warmup, np.nan) if has_oe else np.nan,
        "train_oe_norm_final": history["oe_norm"].iloc[-1] if has_oe else np.nan,
    }
    facts |= (
        training_norms(run)
        if with_training_norms
        else {"eval_train_images_norm": np.nan, "eval_train_views_norm": np.nan}
    )
    tracked = norm_trajectories(run)  # the tracked test subset (notebook runs are tracked)
    peak = tracked.loc[tracked["id_mean"].idxmax()]
    late = tracked[tracked["epoch"] > warmup]
    facts |= {
        "test_id_norm_peak": peak["id_mean"],
        "test_id_norm_peak_epoch": peak["epoch"],
        "test_id_norm_final": tracked["id_mean"].iloc[-1],
        "test_ood_norm_peak": tracked["ood_mean"].max(),
        "test_ood_norm_final": tracked["ood_mean"].iloc[-1],
        "test_ood_above_id_share": float((tracked["ood_mean"] > tracked["id_mean"]).mean()),
        "tracked_auroc_low_after_warmup": late["auroc"].min() if len(late) else np.nan,
        "tracked_auroc_final": tracked["auroc"].iloc[-1],
    }
    return {name: float(value) for name, value in facts.items()}


def training_norms(run: Run, views: int = 4) -> dict[str, float]:
    """The final model's mean ‖z‖ (eval mode) over its ID training images: as they are (as a test image is
    scored), and over `views` augmented views of each (as the loss saw them)."""
    features = extract_features(
        run.model, load_data(run.config).split.id_train.images, views=views, seed=run.config.seed
    )
    return {
        "eval_train_images_norm": features.z.norm(dim=1).mean().item(),
        "eval_train_views_norm": features.z_views.norm(dim=2).mean().item(),
    }


TRAINING_NORM_TOPICS = {("02", "norms-table")}  # the only claims that need training_norms
TRACED = ("simclr-0", "oecl-photos-0")  # the runs notebooks 02 and 03 retrace with recomputed BatchNorm statistics


def batchnorm_facts(trace: pd.DataFrame, warmup: int) -> dict[str, float]:
    """From :func:`ood_explain.teaching.diagnostics.batchnorm_trace`: peak and final ID test ‖z‖, and the lowest and
    highest AUROC after the warm-up, with BatchNorm's running averages and with recomputed statistics."""
    late = trace[trace["epoch"] > warmup]
    return {
        f"bn_{kind}_{name}": float(value)
        for kind in ("running", "recomputed")
        for name, value in (
            ("id_peak", trace[f"{kind}_id"].max()),
            ("id_final", trace[f"{kind}_id"].iloc[-1]),
            ("auroc_low_after_warmup", late[f"{kind}_auroc"].min()),
            ("auroc_high_after_warmup", late[f"{kind}_auroc"].max()),
        )
    }


def facts_of(run: Run, key: str, retrace: bool, with_training_norms: bool = True) -> dict[str, float]:
    """run_facts, plus the BatchNorm trace's facts for a traced run: retrained when `retrace`, else only
    when the notebook has made the trace already (``<out>-batchnorm/trace.csv``)."""
    facts = run_facts(run, with_training_norms)
    if key in TRACED and (retrace or (Path(trace_config(run.config).out) / "trace.csv").exists()):
        assert run.config.epochs is not None  # a run folder records its resolved config
        trace = batchnorm_trace(run.config, nb.tracked_epochs(run.config.epochs))
        facts |= batchnorm_facts(trace, run.config.warmup_epochs or 0)
    return facts


# ---------------------------------------------------------------------------------------- quoted quantities

PerSeed = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Claim:
    """A quantity a notebook's prose quotes: `per_seed` maps runs.csv to one value per seed (index: seed);
    `keys`: the runs it needs; `topic`: the figure it belongs to (for :func:`your_run`); `scale` 100 for a
    percentage."""

    notebook: str
    topic: str
    name: str
    keys: tuple[str, ...]
    per_seed: PerSeed
    scale: float = 1.0


@dataclass(frozen=True)
class Statement:
    """A qualitative statement of a notebook's prose (which method wins, which way a curve goes): `holds`
    maps runs.csv to one bool per seed."""

    notebook: str
    topic: str
    text: str
    keys: tuple[str, ...]
    holds: PerSeed


def column(runs: pd.DataFrame, key: str, name: str) -> pd.Series:
    """One fact of one run, per seed (NaN where that run lacks it)."""
    part = runs[runs["key"] == key].set_index("seed")
    return part[name] if name in part else pd.Series(np.nan, index=part.index)


def fact(notebook: str, topic: str, name: str, key: str, fact_name: str, scale: float = 1.0) -> Claim:
    return Claim(notebook, topic, name, (key,), lambda runs: column(runs, key, fact_name), scale)


def count(
    notebook: str,
    topic: str,
    name: str,
    keys: list[str],
    test: Callable[[Callable[[str, str], pd.Series], str], pd.Series],
) -> Claim:
    """Per seed, how many of the runs `keys` pass `test(get, key)` (get(key, fact) -> per-seed Series)."""

    def per_seed(runs: pd.DataFrame) -> pd.Series:
        get = lambda key, name: column(runs, key, name)  # noqa: E731
        return sum(test(get, key).astype(float) for key in keys)

    return Claim(notebook, topic, name, tuple(keys), per_seed)


def statement(
    notebook: str,
    topic: str,
    text: str,
    keys: tuple[str, ...],
    test: Callable[[Callable[[str, str], pd.Series]], pd.Series],
) -> Statement:
    return Statement(notebook, topic, text, keys, lambda runs: test(lambda key, name: column(runs, key, name)))


def all_of(conditions: list[pd.Series]) -> pd.Series:
    """Per seed: every condition holds."""
    return pd.concat(conditions, axis=1).all(axis=1)


INVERTED = 0.5
HUMP = 1.25  # "rises and falls back": the tracked peak at least 25 % above the final value


def _claims() -> list[Claim]:
    c: list[Claim] = [
        fact("00", "aurocs", "SimCLR ‖z‖ AUROC, digit 0 (%)", "simclr-0", "auroc_norm", 100),
        fact("00", "aurocs", "OECL (photo OE) ‖z‖ AUROC, digit 0 (%)", "oecl-photos-0", "auroc_norm", 100),
    ]
    for key, label, topic in (
        ("simclr-0", "weight decay 5e-4", "trajectory"),
        ("simclr-0-no-decay", "weight decay 0", "no-decay"),
    ):
        c += [
            fact(
                "02",
                topic,
                f"SimCLR digit 0, {label}: peak mean ‖z‖ of tracked ID test images",
                key,
                "test_id_norm_peak",
            ),
            fact("02", topic, f"SimCLR digit 0, {label}: epoch of that peak", key, "test_id_norm_peak_epoch"),
            fact(
                "02",
                topic,
                f"SimCLR digit 0, {label}: final mean ‖z‖ of tracked ID test images",
                key,
                "test_id_norm_final",
            ),
            fact(
                "02",
                topic,
                f"SimCLR digit 0, {label}: final mean ‖z‖ of tracked OOD test images",
                key,
                "test_ood_norm_final",
            ),
            fact("02", topic, f"SimCLR digit 0, {label}: final tracked ‖z‖ AUROC (%)", key, "tracked_auroc_final", 100),
        ]
    c += [
        fact(
            "02", "norms-table", "SimCLR digit 0: final training-view ‖z‖ (history)", "simclr-0", "train_id_norm_final"
        ),
        fact(
            "02",
            "norms-table",
            "SimCLR digit 0: final model, mean ‖z‖ of augmented views of the training images",
            "simclr-0",
            "eval_train_views_norm",
        ),
        fact(
            "02",
            "norms-table",
            "SimCLR digit 0: final model, mean ‖z‖ of the training images as they are",
            "simclr-0",
            "eval_train_images_norm",
        ),
    ]
    for kind, label in (("running", "BatchNorm running averages"), ("recomputed", "recomputed BatchNorm statistics")):
        c += [
            fact(
                "02",
                "batchnorm",
                f"SimCLR digit 0: peak mean ‖z‖ of ID test images, {label}",
                "simclr-0",
                f"bn_{kind}_id_peak",
            ),
            fact(
                "02",
                "batchnorm",
                f"SimCLR digit 0: final mean ‖z‖ of ID test images, {label}",
                "simclr-0",
                f"bn_{kind}_id_final",
            ),
            fact(
                "02",
                "batchnorm",
                f"SimCLR digit 0: highest AUROC after the warm-up, {label} (%)",
                "simclr-0",
                f"bn_{kind}_auroc_high_after_warmup",
                100,
            ),
        ]
    simclr_digits = [f"simclr-{k}" for k in range(10)]
    c += [
        count(
            "02",
            "per-class",
            "digits (of 10) where SimCLR's ‖z‖ is inverted (AUROC < 50 %)",
            simclr_digits,
            lambda get, key: get(key, "auroc_norm") < INVERTED,
        ),
        count(
            "02",
            "per-class",
            "inverted digits (‖z‖ < 50 %) whose ‖mean z‖ is above 50 %",
            simclr_digits,
            lambda get, key: (get(key, "auroc_norm") < INVERTED) & (get(key, "auroc_norm_of_mean") >= INVERTED),
        ),
    ]
    for key, label, topic in (
        ("oecl-photos-0", "weight decay 5e-4", "training-norms"),
        ("oecl-photos-0-no-decay", "weight decay 0", "no-decay"),
    ):
        c += [
            fact(
                "03",
                topic,
                f"OECL digit 0, {label}: training ID ‖z‖ at the end of the warm-up",
                key,
                "train_id_norm_at_warmup",
            ),
            fact(
                "03",
                topic,
                f"OECL digit 0, {label}: training OE ‖z‖ at the end of the warm-up",
                key,
                "train_oe_norm_at_warmup",
            ),
            fact(
                "03",
                topic,
                f"OECL digit 0, {label}: lowest training ID ‖z‖ after the warm-up",
                key,
                "train_id_norm_low_after_warmup",
            ),
            fact("03", topic, f"OECL digit 0, {label}: final training ID ‖z‖", key, "train_id_norm_final"),
            fact("03", topic, f"OECL digit 0, {label}: final training OE ‖z‖", key, "train_oe_norm_final"),
            fact("03", topic, f"OECL digit 0, {label}: ‖z‖ AUROC (%)", key, "auroc_norm", 100),
        ]
    c += [
        fact(
            "03",
            "batchnorm",
            "OECL digit 0: lowest tracked AUROC after the warm-up (dashboard) (%)",
            "oecl-photos-0",
            "tracked_auroc_low_after_warmup",
            100,
        )
    ]
    for kind, label in (("running", "BatchNorm running averages"), ("recomputed", "recomputed BatchNorm statistics")):
        c += [
            fact(
                "03",
                "batchnorm",
                f"OECL digit 0: lowest AUROC after the warm-up, {label} (%)",
                "oecl-photos-0",
                f"bn_{kind}_auroc_low_after_warmup",
                100,
            ),
            fact(
                "03",
                "batchnorm",
                f"OECL digit 0: peak mean ‖z‖ of ID test images, {label}",
                "oecl-photos-0",
                f"bn_{kind}_id_peak",
            ),
        ]
    for name in OE_SOURCES:
        c += [
            fact("03", "oe-sources", f"OECL OE {name}, digit 0: ‖z‖ AUROC (%)", f"oecl-{name}-0", "auroc_norm", 100),
            fact(
                "03",
                "oe-sources",
                f"OECL OE {name}, digit 0: ‖mean z‖ AUROC (%)",
                f"oecl-{name}-0",
                "auroc_norm_of_mean",
                100,
            ),
        ]
    c += [
        fact(
            "03",
            "oe-sources",
            "OECL OE photos, digit 0: mean ‖z‖² over views AUROC (%)",
            "oecl-photos-0",
            "auroc_mean_sq_norm",
            100,
        )
    ]
    for k in (0, 6, 8):
        for method, key in (("SimCLR", f"simclr-{k}"), ("self-OECL", f"self-oecl-{k}"), ("OECL", f"oecl-photos-{k}")):
            c.append(
                fact("04", "comparison", f"{method} ‖mean z‖ AUROC, digit {k} (%)", key, "auroc_norm_of_mean", 100)
            )
    for k in (0, 6, 8):
        key = f"self-oecl-{k}"
        c += [
            fact(
                "04",
                "norms",
                f"self-OECL digit {k}: training ID ‖z‖ at the end of the warm-up",
                key,
                "train_id_norm_at_warmup",
            ),
            fact("04", "norms", f"self-OECL digit {k}: final training ID ‖z‖", key, "train_id_norm_final"),
            fact("04", "norms", f"self-OECL digit {k}: final training OE ‖z‖", key, "train_oe_norm_final"),
        ]
    for k in (0, 1):
        for method in ("simclr", "oecl"):
            for score, label in (("norm", "‖z‖"), ("cosine_nn", "cosine to nearest training z")):
                c.append(
                    fact(
                        "05",
                        "loco",
                        f"LOCO held-out {k}, {method}: {label} AUROC (%)",
                        f"{method}-loco-{k}",
                        f"auroc_{score}",
                        100,
                    )
                )
    return c


def _statements() -> list[Statement]:
    s: list[Statement] = [
        statement(
            "00",
            "aurocs",
            "SimCLR's ‖z‖ is inverted on the 0s (AUROC below 50 %)",
            ("simclr-0",),
            lambda get: get("simclr-0", "auroc_norm") < INVERTED,
        ),
        statement(
            "00",
            "aurocs",
            "OECL's ‖z‖ AUROC is above SimCLR's on the 0s",
            ("simclr-0", "oecl-photos-0"),
            lambda get: get("oecl-photos-0", "auroc_norm") > get("simclr-0", "auroc_norm"),
        ),
    ]
    for key, label, topic in (
        ("simclr-0", "SimCLR digit 0", "trajectory"),
        ("simclr-0-no-decay", "SimCLR digit 0, weight decay 0", "no-decay"),
    ):
        s += [
            statement(
                "02",
                topic,
                f"{label}: the tracked ID test norm rises to a peak at least {HUMP:g} times its "
                "final value, then falls back",
                (key,),
                # mypy cannot type a lambda with a default argument (python/mypy#15459), which binds the loop value
                lambda get, key=key: get(key, "test_id_norm_peak") >= HUMP * get(key, "test_id_norm_final"),  # type: ignore[misc]
            ),
            statement(
                "02",
                topic,
                f"{label}: the OOD test norm ends above the ID test norm",
                (key,),
                # mypy cannot type a lambda with a default argument (python/mypy#15459), which binds the loop value
                lambda get, key=key: get(key, "test_ood_norm_final") > get(key, "test_id_norm_final"),  # type: ignore[misc]
            ),
        ]
    s += [
        statement(
            "02",
            "trajectory",
            "SimCLR digit 0: the OOD test norm is above the ID test norm at every tracked epoch",
            ("simclr-0",),
            lambda get: get("simclr-0", "test_ood_above_id_share") == 1.0,
        ),
        statement(
            "02",
            "norms-table",
            "SimCLR digit 0: the final model gives the training images as they are a shorter z "
            "than their augmented views",
            ("simclr-0",),
            lambda get: get("simclr-0", "eval_train_images_norm") < get("simclr-0", "eval_train_views_norm"),
        ),
        statement(
            "02",
            "batchnorm",
            "SimCLR digit 0: the ID test norm's peak is lower with recomputed BatchNorm statistics "
            "than with running averages",
            ("simclr-0",),
            lambda get: get("simclr-0", "bn_recomputed_id_peak") < get("simclr-0", "bn_running_id_peak"),
        ),
        statement(
            "02",
            "batchnorm",
            f"SimCLR digit 0: with recomputed statistics the ID peak is less than {HUMP:g} times "
            "the final value (no hump)",
            ("simclr-0",),
            lambda get: get("simclr-0", "bn_recomputed_id_peak") < HUMP * get("simclr-0", "bn_recomputed_id_final"),
        ),
    ]
    oecl = "oecl-photos-0"
    s += [
        statement(
            "03",
            "training-norms",
            "OECL digit 0: at the end of the warm-up the ID and OE training norms are "
            "within a factor 1.5 of each other",
            (oecl,),
            lambda get: (get(oecl, "train_oe_norm_at_warmup") / get(oecl, "train_id_norm_at_warmup")).between(
                1 / 1.5, 1.5
            ),
        ),
        statement(
            "03",
            "training-norms",
            "OECL digit 0: the ID training norm falls below its end-of-warm-up value after the OE term switches on",
            (oecl,),
            lambda get: get(oecl, "train_id_norm_low_after_warmup") < get(oecl, "train_id_norm_at_warmup"),
        ),
        statement(
            "03",
            "training-norms",
            "OECL digit 0: the OE training norm ends below a tenth of the ID training norm",
            (oecl,),
            lambda get: get(oecl, "train_oe_norm_final") < 0.1 * get(oecl, "train_id_norm_final"),
        ),
        statement(
            "03",
            "no-decay",
            "OECL digit 0: without weight decay the ID training norm falls at least as far after the warm-up",
            (oecl, "oecl-photos-0-no-decay"),
            lambda get: (
                get("oecl-photos-0-no-decay", "train_id_norm_low_after_warmup")
                <= get(oecl, "train_id_norm_low_after_warmup")
            ),
        ),
        statement(
            "03",
            "no-decay",
            "OECL digit 0: the ‖z‖ AUROC is lower without weight decay",
            (oecl, "oecl-photos-0-no-decay"),
            lambda get: get("oecl-photos-0-no-decay", "auroc_norm") < get(oecl, "auroc_norm"),
        ),
        statement(
            "03",
            "batchnorm",
            "OECL digit 0: with running averages the AUROC falls below 50 % after the warm-up",
            (oecl,),
            lambda get: get(oecl, "bn_running_auroc_low_after_warmup") < INVERTED,
        ),
        statement(
            "03",
            "batchnorm",
            "OECL digit 0: the lowest AUROC after the warm-up is higher with recomputed "
            "statistics than with running averages",
            (oecl,),
            lambda get: (
                get(oecl, "bn_recomputed_auroc_low_after_warmup") > get(oecl, "bn_running_auroc_low_after_warmup")
            ),
        ),
        statement(
            "03",
            "oe-sources",
            "every OE source's ‖z‖ AUROC is above SimCLR's on the 0s",
            ("simclr-0", *(f"oecl-{n}-0" for n in OE_SOURCES)),
            lambda get: all_of([get(f"oecl-{n}-0", "auroc_norm") > get("simclr-0", "auroc_norm") for n in OE_SOURCES]),
        ),
        statement(
            "03",
            "oe-sources",
            "Fashion-MNIST OE gives a ‖z‖ AUROC below 60 %",
            ("oecl-fashion-0",),
            lambda get: get("oecl-fashion-0", "auroc_norm") < 0.6,
        ),
        statement(
            "03",
            "oe-sources",
            "ten outliers per class give a higher ‖z‖ AUROC than one",
            ("oecl-1shot-0", "oecl-10shot-0"),
            lambda get: get("oecl-10shot-0", "auroc_norm") > get("oecl-1shot-0", "auroc_norm"),
        ),
    ]
    for name in ("photos", "mnist"):
        key = f"oecl-{name}-0"
        s.append(
            statement(
                "03",
                "oe-sources",
                f"OE {name}: ‖mean z‖ over views ranks below ‖z‖ of the plain image",
                (key,),
                # mypy cannot type a lambda with a default argument (python/mypy#15459), which binds the loop value
                lambda get, key=key: get(key, "auroc_norm_of_mean") < get(key, "auroc_norm"),  # type: ignore[misc]
            )
        )
    s.append(
        statement(
            "03",
            "oe-sources",
            "OE photos: the mean ‖z‖² over views ranks below ‖z‖ of the plain image",
            (oecl,),
            lambda get: get(oecl, "auroc_mean_sq_norm") < get(oecl, "auroc_norm"),
        )
    )

    def mean_z(get, key: str) -> pd.Series:
        return get(key, "auroc_norm_of_mean")

    s += [
        statement(
            "04",
            "comparison",
            "self-OECL's ‖mean z‖ is above SimCLR's on all three digits",
            tuple(f"{m}-{k}" for k in (0, 6, 8) for m in ("simclr", "self-oecl")),
            lambda get: all_of([mean_z(get, f"self-oecl-{k}") > mean_z(get, f"simclr-{k}") for k in (0, 6, 8)]),
        ),
        statement(
            "04",
            "comparison",
            "self-OECL is above OECL on the 6s",
            ("self-oecl-6", "oecl-photos-6"),
            lambda get: mean_z(get, "self-oecl-6") > mean_z(get, "oecl-photos-6"),
        ),
        statement(
            "04",
            "comparison",
            "self-OECL is above OECL on the 8s",
            ("self-oecl-8", "oecl-photos-8"),
            lambda get: mean_z(get, "self-oecl-8") > mean_z(get, "oecl-photos-8"),
        ),
        statement(
            "04",
            "comparison",
            "OECL is the best of the three on the 0s",
            ("simclr-0", "self-oecl-0", "oecl-photos-0"),
            lambda get: (
                (mean_z(get, "oecl-photos-0") > mean_z(get, "self-oecl-0"))
                & (mean_z(get, "oecl-photos-0") > mean_z(get, "simclr-0"))
            ),
        ),
        statement(
            "04",
            "comparison",
            "self-OECL scores the 6s higher than the 0s and the 8s",
            ("self-oecl-0", "self-oecl-6", "self-oecl-8"),
            lambda get: (
                (mean_z(get, "self-oecl-6") > mean_z(get, "self-oecl-0"))
                & (mean_z(get, "self-oecl-6") > mean_z(get, "self-oecl-8"))
            ),
        ),
        statement(
            "04",
            "norms",
            "self-OECL's final ID training norm is below half its end-of-warm-up value on all three digits",
            tuple(f"self-oecl-{k}" for k in (0, 6, 8)),
            lambda get: all_of(
                [
                    get(f"self-oecl-{k}", "train_id_norm_final")
                    < 0.5 * get(f"self-oecl-{k}", "train_id_norm_at_warmup")
                    for k in (0, 6, 8)
                ]
            ),
        ),
        statement(
            "04",
            "norms",
            "self-OECL on the 6s: the ID training views end with a larger norm than the rotated (OE) views",
            ("self-oecl-6",),
            lambda get: get("self-oecl-6", "train_id_norm_final") > get("self-oecl-6", "train_oe_norm_final"),
        ),
    ]
    s += [
        statement(
            "05",
            "loco",
            "held-out 0: SimCLR's ‖z‖ is inverted (AUROC below 50 %)",
            ("simclr-loco-0",),
            lambda get: get("simclr-loco-0", "auroc_norm") < INVERTED,
        ),
        statement(
            "05",
            "loco",
            "held-out 0: OECL's ‖z‖ AUROC is above SimCLR's",
            ("simclr-loco-0", "oecl-loco-0"),
            lambda get: get("oecl-loco-0", "auroc_norm") > get("simclr-loco-0", "auroc_norm"),
        ),
        statement(
            "05",
            "loco",
            "held-out 1: OECL's ‖z‖ AUROC is above SimCLR's",
            ("simclr-loco-1", "oecl-loco-1"),
            lambda get: get("oecl-loco-1", "auroc_norm") > get("simclr-loco-1", "auroc_norm"),
        ),
    ]
    for k in (0, 1):
        s.append(
            statement(
                "05",
                "loco",
                f"held-out {k}: OECL's cosine-to-nearest-training-z AUROC is above SimCLR's",
                (f"simclr-loco-{k}", f"oecl-loco-{k}"),
                # mypy cannot type a lambda with a default argument (python/mypy#15459), which binds the loop value
                lambda get, k=k: get(f"oecl-loco-{k}", "auroc_cosine_nn") > get(f"simclr-loco-{k}", "auroc_cosine_nn"),  # type: ignore[misc]
            )
        )
    return s


CLAIMS = _claims()
STATEMENTS = _statements()


def coverage(n: int) -> float:
    """The probability that a new run lands inside the min–max of `n` exchangeable runs: (n − 1)/(n + 1)."""
    return (n - 1) / (n + 1)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: notebook, topic, claim, seed count, per-seed values, mean, sample std, min and max
    (scaled)."""
    rows = []
    for claim in CLAIMS:
        values = claim.per_seed(runs).sort_index() * claim.scale
        rows.append(
            {
                "notebook": claim.notebook,
                "topic": claim.topic,
                "claim": claim.name,
                "n": len(values),
                "seeds": " ".join(map(str, values.index)),
                "values": " ".join(f"{v:.4g}" for v in values),
                "mean": values.mean(),
                "std": values.std(ddof=1),
                "min": values.min(),
                "max": values.max(),
            }
        )
    return pd.DataFrame(rows)


def summarize_statements(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per statement: notebook, topic, statement, the seeds it holds in (holds of n)."""
    rows = []
    for item in STATEMENTS:
        held = item.holds(runs).sort_index().astype(bool)
        rows.append(
            {
                "notebook": item.notebook,
                "topic": item.topic,
                "statement": item.text,
                "holds": int(held.sum()),
                "n": len(held),
                "per_seed": "".join("1" if h else "0" for h in held),
            }
        )
    return pd.DataFrame(rows)


def checked_seeds(seeds: int | str | list[int]) -> list[int]:
    """The seed list of a claims study (:func:`ood_explain.experiments.sweeps.seed_list` refuses repeats), refused
    before any work when empty."""
    chosen = seed_list(seeds)
    if not chosen:
        raise ValueError("claims needs at least one seed (--seeds 10 for seeds 0-9, or a list such as 0,4,7)")
    return chosen


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder: a failure leaves the old file whole."""
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        handle.write(text)
        temporary = Path(handle.name)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def notebook_claims(
    seeds: int | str | list[int] = 10,
    out: str | Path = RESULTS,
    runs_root: str | Path = "runs/notebook-claims",
    progress: bool = False,
) -> pd.DataFrame:
    """Train (or load) every run of :data:`RUNS` for each seed, then write runs.csv, claims.csv, claims.md
    and statements.csv into `out` (each atomically, after every run is done); returns the claims table."""
    chosen = checked_seeds(seeds)
    out, runs_root = Path(out), Path(runs_root)
    nb.setup()  # one torch thread, as in the notebooks: the same seed gives the notebook's digits
    rows = []
    for seed in chosen:
        for spec in RUNS:
            run = nb.load_or_run(spec.config(seed, runs_root), progress=progress)
            rows.append({"key": spec.key, "seed": seed, **facts_of(run, spec.key, retrace=True)})
    runs = pd.DataFrame(rows)
    table, statements = summarize(runs), summarize_statements(runs)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "runs.csv", runs.to_csv(index=False, float_format="%.5g"))
    write_atomically(out / "claims.csv", table.to_csv(index=False, float_format="%.4f"))
    write_atomically(out / "statements.csv", statements.to_csv(index=False))
    write_atomically(out / "claims.md", format_claims(table, statements))
    return table


def format_claims(table: pd.DataFrame, statements: pd.DataFrame) -> str:
    """claims.md: one section per notebook, each claim as mean ± std and min–max over seeds, each statement
    with the seeds it holds in."""
    seeds = sorted({int(s) for text in table["seeds"] for s in str(text).split()})
    n = len(seeds)
    lines = [
        "# Numbers and statements quoted in the notebooks' prose",
        "",
        f"Lite preset, scikit-learn digits, one torch thread, seeds {', '.join(map(str, seeds))}. Made by "
        f"`ood-explain claims --seeds {n}`; per run and seed: runs.csv. The prose quotes min – max; a new run "
        f"lands inside the min – max of {n} runs with probability (n − 1)/(n + 1) = {coverage(n):.0%}.",
        "",
    ]
    for notebook, part in table.groupby("notebook"):
        lines += [f"## Notebook {notebook}", "", "| claim | per seed | mean ± std | min – max |", "|:--|:--|--:|--:|"]
        lines += [
            f"| {row.claim} | {row['values']} | {row['mean']:.1f} ± {row['std']:.1f} | "
            f"{row['min']:.1f} – {row['max']:.1f} |"
            for _, row in part.iterrows()
        ]
        said = statements[statements["notebook"] == notebook]
        lines += ["", "| statement | holds in | per seed |", "|:--|--:|:--|"]
        lines += [f"| {row.statement} | {row.holds} of {row.n} | {row.per_seed} |" for _, row in said.iterrows()]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- your run


@dataclass(frozen=True)
class Verdict:
    """One claim or statement checked against one run: `inside` for a claim in its range, or a statement
    that holds."""

    notebook: str
    topic: str
    kind: str  # "range" or "statement"
    name: str
    inside: bool
    value: float | None
    low: float | None
    high: float | None
    n: int
    holds: int | None = None

    def line(self) -> str:
        mark = "✓" if self.inside else "·"
        if self.kind == "range":
            assert self.value is not None  # verdicts() gives every range verdict its value
            shown = f"{self.value:.1f}" if abs(self.value) >= 1 or self.value == 0 else f"{self.value:.2f}"
            text = f"{mark} {self.name}: your run {shown} (range of {self.n} seeds: {self.low:.1f} – {self.high:.1f})"
            if not self.inside:
                text += f"; your run is outside the usual range, which happens in about 2 runs in {self.n + 1}"
            return text
        verdict = "holds in your run" if self.inside else "does not hold in your run"
        return f"{mark} {self.name}: {verdict} (it held in {self.holds} of {self.n} seeds)"


def verdicts(
    runs: list[Run], notebook: str, topic: str, retrace: bool = False, results: str | Path = EXPECTED
) -> list[Verdict]:
    """The claims and statements of (`notebook`, `topic`) whose runs are among `runs` (matched by
    :func:`key_of`), each checked against those runs and the committed claims and statements files."""
    keyed = {key: run for run in runs if (key := key_of(run)) is not None}
    if not keyed:
        return []
    table = pd.read_csv(Path(results) / "claims.csv", dtype={"notebook": str})
    said = pd.read_csv(Path(results) / "statements.csv", dtype={"notebook": str})
    training = (notebook, topic) in TRAINING_NORM_TOPICS
    rows = pd.DataFrame(
        [{"key": key, "seed": 0, **facts_of(run, key, retrace, training)} for key, run in keyed.items()]
    )
    found = []
    for claim in (c for c in CLAIMS if (c.notebook, c.topic) == (notebook, topic) and set(c.keys) <= set(keyed)):
        value = float(claim.per_seed(rows).iloc[0]) * claim.scale
        if np.isnan(value):
            continue
        expected = table[table["claim"] == claim.name].iloc[0]
        low, high = float(expected["min"]), float(expected["max"])
        found.append(
            Verdict(
                notebook, topic, "range", claim.name, within(value, low, high), value, low, high, int(expected["n"])
            )
        )
    for item in (s for s in STATEMENTS if (s.notebook, s.topic) == (notebook, topic) and set(s.keys) <= set(keyed)):
        held = item.holds(rows)
        expected = said[said["statement"] == item.text].iloc[0]
        if held.isna().all():
            continue
        found.append(
            Verdict(
                notebook,
                topic,
                "statement",
                item.text,
                bool(held.iloc[0]),
                None,
                None,
                None,
                int(expected["n"]),
                int(expected["holds"]),
            )
        )
    return found


class Verdicts(list):
    """The verdicts :func:`your_run` printed: a list, which a notebook cell ending with it does not show again
    (IPython's display hook, ``_ipython_display_``, shows nothing: the lines are printed already)."""

    def _ipython_display_(self) -> None:
        return None


def your_run(runs: Run | list[Run], notebook: str, topic: str) -> Verdicts:
    """Print this run's values beside the ranges and statements the prose quotes about the figure above
    (``✓`` inside / holds, ``·`` outside); with ``$OOD_EXPLAIN_CLAIMS_LOG`` set, also append them there as
    JSON lines. Runs of another preset (fast mode) or with other settings have nothing to compare."""
    found = Verdicts(verdicts(runs if isinstance(runs, list) else [runs], notebook, topic))
    if not found:
        print(
            "Your run: nothing to compare (the ranges in the text are for the lite preset's runs; fast mode or "
            "other settings give other runs)."
        )
        return found
    inside = sum(v.inside for v in found)
    print(f"Your run against the text ({inside} of {len(found)} as stated):")
    for verdict in found:
        print("  " + verdict.line())
    log = os.environ.get(LOG_VARIABLE)
    if log:
        with open(log, "a") as handle:
            for verdict in found:
                handle.write(json.dumps(verdict.__dict__) + "\n")
    return found
