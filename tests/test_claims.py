"""The claims study's bookkeeping: per-seed quantities, counts, statements, "your run" verdicts and the
seed list, on a made-up runs table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ood_explain import claims, cli

FACTS = ("auroc_mean_sq_norm", "auroc_cosine_nn", "auroc_knn", "train_id_norm_final", "train_id_norm_peak",
         "train_id_norm_at_warmup", "train_id_norm_low_after_warmup", "train_oe_norm_at_warmup", "train_oe_norm_final",
         "eval_train_images_norm", "eval_train_views_norm", "test_id_norm_peak", "test_id_norm_peak_epoch",
         "test_id_norm_final", "test_ood_norm_peak", "test_ood_norm_final", "test_ood_above_id_share",
         "tracked_auroc_low_after_warmup", "tracked_auroc_final", "bn_running_id_peak", "bn_running_id_final",
         "bn_running_auroc_low_after_warmup", "bn_recomputed_id_peak", "bn_recomputed_id_final",
         "bn_recomputed_auroc_low_after_warmup", "bn_running_auroc_high_after_warmup",
         "bn_recomputed_auroc_high_after_warmup")


@pytest.fixture
def runs() -> pd.DataFrame:
    """Every run of the study for seeds 3 and 7, every fact 1.0 and every AUROC 0.6, except: SimCLR
    inverted on digits 0-3 for seed 3 and on digits 0-1 for seed 7; the 1-shot OECL run at 0.3 for seed 7."""
    facts = {"auroc_norm": 0.6, "auroc_norm_of_mean": 0.6}
    rows = [{"key": run.key, "seed": seed, **facts} for seed in (3, 7) for run in claims.RUNS]
    table = pd.DataFrame(rows)
    for column in FACTS:
        table[column] = 1.0
    inverted = {3: range(4), 7: range(2)}
    for seed, digits in inverted.items():
        for k in digits:
            table.loc[(table["key"] == f"simclr-{k}") & (table["seed"] == seed), "auroc_norm"] = 0.3
    table.loc[(table["key"] == "oecl-1shot-0") & (table["seed"] == 7), "auroc_norm"] = 0.3
    return table


def claim(name: str) -> claims.Claim:
    return next(c for c in claims.CLAIMS if c.name == name)


def said(text: str) -> claims.Statement:
    return next(s for s in claims.STATEMENTS if s.text == text)


def test_a_count_is_per_seed(runs):
    counted = claim("digits (of 10) where SimCLR's ‖z‖ is inverted (AUROC < 50 %)").per_seed(runs)
    assert counted.to_dict() == {3: 4.0, 7: 2.0}


def test_a_statement_holds_per_seed_and_compares_within_a_seed(runs):
    # seed 3: SimCLR digit 0 at 0.3, every OE source at 0.6; seed 7: the 1-shot run ties SimCLR at 0.3
    held = said("every OE source's ‖z‖ AUROC is above SimCLR's on the 0s").holds(runs)
    assert held.to_dict() == {3: True, 7: False}
    assert said("SimCLR's ‖z‖ is inverted on the 0s (AUROC below 50 %)").holds(runs).to_dict() == {3: True, 7: True}


def test_summaries_scale_spread_and_label_seeds_by_value(runs):
    table = claims.summarize(runs)
    row = table[table["claim"] == "digits (of 10) where SimCLR's ‖z‖ is inverted (AUROC < 50 %)"].iloc[0]
    assert (row["min"], row["max"], row["mean"], row["n"], row["seeds"]) == (2.0, 4.0, 3.0, 2, "3 7")
    assert row["std"] == pytest.approx(np.std([4, 2], ddof=1))
    percent = table[table["claim"] == "SimCLR ‖z‖ AUROC, digit 0 (%)"].iloc[0]
    assert percent["values"] == "30 30" and percent["std"] == 0
    assert set(table["notebook"]) == {"00", "02", "03", "04", "05"}
    statements = claims.summarize_statements(runs)
    every = statements[statements["statement"] == "every OE source's ‖z‖ AUROC is above SimCLR's on the 0s"].iloc[0]
    assert (every["holds"], every["n"], every["per_seed"]) == (1, 2, "10")
    text = claims.format_claims(table, statements)
    assert "## Notebook 03" in text and "seeds 3, 7" in text and "| 1 of 2 | 10 |" in text


def test_coverage_of_the_range_of_n_runs():
    assert claims.coverage(10) == pytest.approx(9 / 11)
    # an empirical check: the next of 11 exchangeable draws lands inside the min-max of the first 10
    draws = np.random.default_rng(0).normal(size=(20000, 11))
    inside = (draws[:, 10] >= draws[:, :10].min(1)) & (draws[:, 10] <= draws[:, :10].max(1))
    assert inside.mean() == pytest.approx(claims.coverage(10), abs=0.01)


@pytest.mark.parametrize("seeds, message", [("0", "at least (one|1)"), ([1, 1], "more than once")])
def test_a_bad_seed_list_is_refused_before_any_file_is_touched(seeds, message, tmp_path):
    committed = tmp_path / "runs.csv"
    committed.write_text("key,seed\nsimclr-0,0\n")
    with pytest.raises(ValueError, match=message):
        claims.notebook_claims(seeds, out=tmp_path, runs_root=tmp_path / "runs")
    assert committed.read_text() == "key,seed\nsimclr-0,0\n" and not (tmp_path / "runs").exists()


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "claims.csv"
    target.write_text("old")

    def broken_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(claims.os, "replace", broken_replace)
    with pytest.raises(OSError):
        claims.write_atomically(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["claims.csv"]


def test_the_cli_refuses_an_empty_seed_list_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["claims", "--seeds", "0", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "at least 1" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def committed(runs, tmp_path):
    """claims.csv and statements.csv of the made-up table, as your_run reads them."""
    claims.summarize(runs).to_csv(tmp_path / "claims.csv", index=False)
    claims.summarize_statements(runs).to_csv(tmp_path / "statements.csv", index=False)
    return tmp_path


def test_your_run_marks_values_inside_and_outside_and_logs_them(runs, committed, monkeypatch, tmp_path, capsys):
    """A fake student run of SimCLR digit 0 with AUROC 0.25 (outside 30-30 %) that is inverted (holds)."""
    class FakeRun:
        config = None

    facts = {name: 1.0 for name in FACTS} | {"auroc_norm": 0.25, "auroc_norm_of_mean": 0.25}
    monkeypatch.setattr(claims, "key_of", lambda run: "simclr-0")
    monkeypatch.setattr(claims, "facts_of", lambda run, key, retrace, training=True: facts)
    monkeypatch.setattr(claims, "RESULTS", committed)
    monkeypatch.setattr(claims.verdicts, "__defaults__", (False, committed))
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(claims.LOG_VARIABLE, str(log))
    found = claims.your_run(FakeRun(), "00", "aurocs")
    printed = capsys.readouterr().out
    assert [v.kind for v in found] == ["range", "statement"]  # OECL's claims need the OECL run: skipped
    assert "· SimCLR ‖z‖ AUROC, digit 0 (%): your run 25.0 (range of 2 seeds: 30.0 – 30.0)" in printed
    assert "outside the usual range" in printed
    assert "✓ SimCLR's ‖z‖ is inverted on the 0s (AUROC below 50 %): holds in your run (it held in 2 of 2 seeds)" in printed
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["inside"] for entry in logged] == [False, True]


def test_your_run_without_matching_runs_says_so(capsys, monkeypatch):
    monkeypatch.setattr(claims, "key_of", lambda run: None)
    assert claims.your_run([object()], "00", "aurocs") == []
    assert "nothing to compare" in capsys.readouterr().out


def test_every_claim_and_statement_names_runs_of_the_study():
    keys = {run.key for run in claims.RUNS}
    assert all(set(c.keys) <= keys for c in claims.CLAIMS) and all(set(s.keys) <= keys for s in claims.STATEMENTS)
    assert len({c.name for c in claims.CLAIMS}) == len(claims.CLAIMS)
    assert len({s.text for s in claims.STATEMENTS}) == len(claims.STATEMENTS)


def test_a_cell_ending_with_your_run_shows_no_list_repr():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    with capture_output() as captured:
        shell.displayhook(claims.Verdicts([1, 2]))
    assert captured.outputs == [] and "1" not in captured.stdout and claims.Verdicts([1]) == [1]
    with capture_output() as plain:
        shell.displayhook([1, 2])  # a plain list is shown: the check above can fail
    assert "[1, 2]" in plain.stdout
