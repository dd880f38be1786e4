"""The claims study's bookkeeping: per-seed quantities, counts and comparisons, on a made-up runs table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ood_explain import claims


FACTS = ("auroc_mean_sq_norm", "train_id_norm_final", "train_id_norm_peak", "train_id_norm_at_warmup", "train_id_norm_low_after_warmup",
         "train_oe_norm_final", "eval_train_images_norm", "eval_train_views_norm", "test_id_norm_peak",
         "test_id_norm_peak_epoch", "test_id_norm_final", "test_ood_norm_peak", "test_ood_norm_final",
         "tracked_auroc_low_after_warmup", "tracked_auroc_final", "bn_running_id_peak", "bn_running_id_final",
         "bn_running_auroc_low_after_warmup", "bn_recomputed_id_peak", "bn_recomputed_id_final",
         "bn_recomputed_auroc_low_after_warmup", "bn_running_auroc_high_after_warmup",
         "bn_recomputed_auroc_high_after_warmup")


@pytest.fixture
def runs() -> pd.DataFrame:
    """Every run of the study for seeds 0 and 1, every fact 0.6, except: SimCLR inverted on digits 0-3
    for seed 0 and on digits 0-1 for seed 1; the 1-shot OECL run below SimCLR for seed 1."""
    facts = {"auroc_norm": 0.6, "auroc_norm_of_mean": 0.6}
    rows = [{"key": run.key, "seed": seed, **facts} for seed in (0, 1) for run in claims.RUNS]
    table = pd.DataFrame(rows)
    for column in FACTS:
        table[column] = 1.0
    inverted = {0: range(4), 1: range(2)}
    for seed, digits in inverted.items():
        for k in digits:
            table.loc[(table["key"] == f"simclr-{k}") & (table["seed"] == seed), "auroc_norm"] = 0.3
    table.loc[(table["key"] == "oecl-1shot-0") & (table["seed"] == 1), "auroc_norm"] = 0.3
    return table


def claim(name: str) -> claims.Claim:
    return next(c for c in claims.CLAIMS if c.name == name)


def test_a_count_is_per_seed(runs):
    counted = claim("digits (of 10) where SimCLR's ‖z‖ is inverted (AUROC < 50 %)").per_seed(runs)
    assert counted.to_dict() == {0: 4.0, 1: 2.0}


def test_beats_compares_with_the_same_seed(runs):
    # seed 0: SimCLR digit 0 is at 0.3, every OE source at 0.6; seed 1: the 1-shot run ties SimCLR at 0.3
    counted = claim("OE sources (of 5) above SimCLR's ‖z‖ AUROC").per_seed(runs)
    assert counted.to_dict() == {0: 5.0, 1: 4.0}


def test_summarize_scales_and_spreads(runs):
    table = claims.summarize(runs)
    row = table[table["claim"] == "digits (of 10) where SimCLR's ‖z‖ is inverted (AUROC < 50 %)"].iloc[0]
    assert (row["min"], row["max"], row["mean"], row["n"]) == (2.0, 4.0, 3.0, 2)
    assert row["std"] == pytest.approx(np.std([4, 2], ddof=1))
    percent = table[table["claim"] == "SimCLR ‖z‖ AUROC, digit 0 (%)"].iloc[0]
    assert percent["values"] == "30 30" and percent["std"] == 0
    assert set(table["notebook"]) == {"00", "02", "03", "04", "05"}
    assert "## Notebook 03" in claims.format_claims(table)
