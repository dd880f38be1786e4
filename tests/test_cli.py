"""The command line (run, report, sweep, errors) and the offline quickstart, end to end."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

from ood_explain import cli


SMALL = ["--preset", "smoke", "--device", "cpu"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A run folder made by `ood-explain run` (digits, self-OECL, smoke preset, no weight decay) and its
    exit code."""
    out = tmp_path_factory.mktemp("cli") / "run"
    code = cli.main(["run", "--dataset", "digits", "--normal-class", "2", "--method", "self-oecl", *SMALL,
                     "--weight-decay", "0", "--out", str(out)])
    return out, code


@pytest.mark.slow
def test_run_returns_zero_and_writes_the_folder(cli_run, capsys):
    out, code = cli_run
    assert code == 0
    for name in ("config.json", "metrics.json", "scores.csv", "history.csv", "checkpoint.pt"):
        assert (out / name).is_file(), name
    record = json.loads((out / "config.json").read_text())
    config = record["run"]
    assert (config["dataset"], config["method"], config["normal_class"], config["preset"]) == (
        "digits", "self-oecl", 2, "smoke")
    assert config["weight_decay"] == 0 and record["train"]["weight_decay"] == 0  # reaches the optimizer


@pytest.mark.slow
def test_run_prints_metrics_and_resumes(cli_run, capsys):
    out, _ = cli_run
    checkpoint = (out / "checkpoint.pt").read_bytes()
    other = cli.main(["run", "--dataset", "digits", "--normal-class", "2", "--method", "self-oecl", *SMALL,
                      "--out", str(out)])  # the default weight decay is another run: refused
    assert other == 2 and "weight_decay: 0.0 in the checkpoint, 0.0005 now" in capsys.readouterr().err
    code = cli.main(["run", "--dataset", "digits", "--normal-class", "2", "--method", "self-oecl", *SMALL,
                     "--weight-decay", "0", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "main score norm_of_mean: AUROC" in printed and f"run folder: {out}" in printed
    assert (out / "checkpoint.pt").read_bytes() == checkpoint  # finished: resumed at the end, no training


@pytest.mark.slow
def test_run_on_real_data_with_data_root(tmp_path, data_root):
    out = tmp_path / "fmnist"
    code = cli.main(["run", "--dataset", "fashion-mnist", "--method", "oecl", "--oe", "mnist", "--normal-class", "5",
                     *SMALL, "--data-root", str(data_root), "--out", str(out)])
    assert code == 0
    record = json.loads((out / "config.json").read_text())["data"]
    assert record["dataset"] == "Fashion-MNIST" and record["oe_images"] == 8000 and record["id_train"] == 6000


@pytest.mark.parametrize("arguments, expected", [
    (["--dataset", "digits", "--method", "csi"], ["unknown method 'csi'", "simclr"]),
    (["--dataset", "digits", "--method", "simclr", "--normal-class", "10"], ["out of range", "0..9"]),
    (["--dataset", "digits", "--method", "oecl"], ["needs an OE source"]),
    (["--dataset", "svhn2", "--method", "simclr"], ["unknown dataset 'svhn2'"]),
])
def test_bad_inputs_exit_with_code_2(tmp_path, capsys, arguments, expected):
    out = tmp_path / "bad"
    code = cli.main(["run", *arguments, *SMALL, "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("ood-explain: error: ") and "Traceback" not in error
    for text in expected:
        assert text in error
    assert not (out / "checkpoint.pt").exists()


def test_missing_data_root_exits_with_code_2(tmp_path, capsys):
    missing = tmp_path / "no-data"
    code = cli.main(["run", "--dataset", "fashion-mnist", "--method", "simclr", *SMALL, "--data-root", str(missing),
                     "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2
    assert "'fashion-mnist' not found" in error and str(missing) in error and "--data-root" in error
    assert not (tmp_path / "run").exists()


def test_missing_oe_folder_exits_with_code_2(tmp_path, capsys):
    code = cli.main(["run", "--dataset", "digits", "--method", "hsc", "--oe", f"imagefolder:{tmp_path / 'nope'}",
                     *SMALL, "--out", str(tmp_path / "run")])
    assert code == 2 and str(tmp_path / "nope") in capsys.readouterr().err


def test_argparse_rejects_unknown_choices(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--preset", "enormous", "--out", str(tmp_path)])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_report_writes_plotly_html(cli_run, capsys):
    out, _ = cli_run
    assert cli.main(["report", str(out)]) == 0
    report = out / "report.html"
    assert str(report) in capsys.readouterr().out
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('class="plotly-graph-div"') == 3  # histogram, ROC curves, norm trajectories
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()  # plotly.js inline: works offline
    assert "self-oecl" in page and "AUROC" in page


@pytest.mark.slow
def test_report_of_a_run_with_names_that_are_not_utf8(cli_run, tmp_path):
    from ood_explain.teaching.viz import write_report

    out, _ = cli_run
    copy = tmp_path / os.fsdecode(b"d\xe9ta")  # an ImageFolder tree named in Latin-1
    shutil.copytree(out, copy)
    record = json.loads((copy / "config.json").read_text())
    record["data"]["dataset"] = f"ImageFolder {copy.name}"
    (copy / "config.json").write_text(json.dumps(record))
    page = write_report(copy).read_bytes().decode("utf-8")  # valid UTF-8
    assert "ImageFolder d&#56553;ta" in page  # the undecodable byte as a character reference


def test_report_on_unfinished_folder_exits_with_code_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_writes_results_with_a_mean_row(tmp_path, capsys):
    root = tmp_path / "sweep"
    code = cli.main(["sweep", "--dataset", "digits", "--methods", "simclr,self-oecl", "--classes", "0,1", *SMALL,
                     "--out", str(root)])
    assert code == 0
    runs = pd.read_csv(root / "results.csv")
    assert len(runs) == 4 and set(runs["method"]) == {"simclr", "self-oecl"} and set(runs["class"]) == {0, 1}
    assert ((runs["auroc"] >= 0) & (runs["auroc"] <= 1)).all()
    markdown = (root / "results.md").read_text()
    assert "| mean " in markdown and "simclr" in markdown and "self-oecl" in markdown
    for method in ("simclr", "self-oecl"):
        for k in (0, 1):
            assert (root / method / f"class-{k}" / "seed-0" / "metrics.json").is_file()
    assert "results:" in capsys.readouterr().out


@pytest.mark.slow
def test_run_with_seeds_prints_mean_and_std(tmp_path, capsys):
    out = tmp_path / "seeds"
    code = cli.main(["run", "--dataset", "digits", "--method", "simclr", *SMALL, "--seeds", "2", "--jobs", "2",
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "seed 0: AUROC" in printed and "seed 1: AUROC" in printed
    assert "2 seed(s): AUROC" in printed and "(sample std)" in printed
    assert all((out / f"seed-{s}" / "metrics.json").is_file() for s in (0, 1))


@pytest.mark.slow
def test_quickstart_smoke(tmp_path, capsys):
    out = tmp_path / "quick"
    assert cli.main(["quickstart", "--out", str(out), "--classes", "0", "--preset", "smoke", "--seeds", "1"]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    # One histogram per method, the ROC curves and the norm trajectories.
    assert page.count('class="plotly-graph-div"') == 5
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["method"]) == ["oecl", "self-oecl", "simclr"] and set(table["class"]) == {0}
    assert "`ood-explain quickstart`" in (out / "results.md").read_text()  # the table names its command
    oecl = json.loads((out / "oecl" / "class-0" / "seed-0" / "config.json").read_text())["data"]
    assert oecl["oe_images"] == 4000 and "photos" in oecl["oe"]
