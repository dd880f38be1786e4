"""ood-explain check-notebooks: counting verdicts, the report, and one real lite notebook (slow)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from ood_explain import cli, notebook_check


def verdicts() -> pd.DataFrame:
    return pd.DataFrame([
        {"notebook": "00", "topic": "aurocs", "kind": "range", "name": "a", "inside": True, "value": 0.5, "low": 0.1,
         "high": 0.9, "n": 10, "holds": None},
        {"notebook": "00", "topic": "aurocs", "kind": "range", "name": "b", "inside": False, "value": 2.0, "low": 0.1,
         "high": 0.9, "n": 10, "holds": None},
        {"notebook": "00", "topic": "aurocs", "kind": "statement", "name": "c", "inside": True, "value": None,
         "low": None, "high": None, "n": 10, "holds": 10},
        {"notebook": "00", "topic": "aurocs", "kind": "statement", "name": "d", "inside": False, "value": None,
         "low": None, "high": None, "n": 10, "holds": 7},
    ])


def test_counts_separate_ranges_statements_and_every_seed_statements():
    assert notebook_check.counts(verdicts()) == {"ranges": 2, "ranges_inside": 1, "statements": 2,
                                                 "statements_held": 1, "every_seed_statements": 1,
                                                 "every_seed_statements_held": 1}


def test_the_report_lists_every_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    notebook_check.write_report(verdicts(), {"00_quickstart": 12.0}, tmp_path)
    report = (tmp_path / "check.md").read_text()
    assert "ONEDNN_MAX_CPU_ISA=SSE41" in report and "inside 1 of 2 (expected about 82%" in report
    assert report.count("| 00 |") == 4 and "held in 7 of 10 seeds" in report
    assert json.loads((tmp_path / "check.json").read_text())["statements_held"] == 1


def test_an_unknown_notebook_prefix_is_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["check-notebooks", "--out", str(tmp_path), "--notebooks", "09"]) == 2
    assert "names none of 00, 01, 02, 03, 04, 05" in capsys.readouterr().err


@pytest.mark.slow
def test_notebook_00_in_lite_mode_checks_its_ranges_and_statements(tmp_path):
    """Executes notebook 00 for real (two lite runs, about two minutes): its your-run cell logs the two
    quoted ranges and the two statements of the text, and the report counts them."""
    before = dict(os.environ)
    found = notebook_check.check_notebooks(tmp_path, names=["00"])
    assert dict(os.environ) == before  # nothing leaks into later tests (nbval's kernels would run in lite mode)
    assert sorted(found["kind"]) == ["range", "range", "statement", "statement"]
    assert set(found["notebook"]) == {"00"} and (tmp_path / "00_quickstart.ipynb").exists()
    assert "quoted ranges: this run inside" in (tmp_path / "check.md").read_text()


def test_a_logged_check_is_judged_by_the_current_claims_files(tmp_path, capsys):
    """The range and count come from the files, not from what the log recorded when it ran."""
    results = tmp_path / "results"
    results.mkdir()
    pd.DataFrame([{"notebook": "00", "claim": "a", "n": 10, "min": 0.4, "max": 0.6}]).to_csv(results / "claims.csv")
    pd.DataFrame([{"notebook": "00", "statement": "c", "holds": 9, "n": 10}]).to_csv(results / "statements.csv")
    out = tmp_path / "check"
    out.mkdir()
    logged = verdicts().iloc[[0, 2]]  # range a (value 0.5, logged against 0.1-0.9) and statement c (10 of 10)
    logged.to_json(out / "claims-log.jsonl", orient="records", lines=True)
    judged = notebook_check.report(out, results)
    assert judged[["low", "high"]].iloc[0].tolist() == [0.4, 0.6] and bool(judged["inside"].iloc[0])
    assert int(judged["holds"].iloc[1]) == 9
    assert "held in 9 of 10 seeds" in (out / "check.md").read_text()
