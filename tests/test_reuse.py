"""Issue 16: a finished folder is only reused when it was made with the same settings, on every path
(``run --seeds``, ``sweep``, ``reproduce``, ``quickstart``, the notebooks' load-or-train); tables say what
they hold; seeds are parsed strictly; the image-folder cache is keyed by content.

Most tests fake finished run folders (config.json, metrics.json, scores.csv, history.csv as run_experiment
writes them) so that nothing trains: each refusal happens before any work."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ood_explain import cli, data, sweeps
from ood_explain.experiments import runs as experiments
from ood_explain import notebook as nb
from ood_explain import quickstart as qs
from ood_explain import reproduce as rp
from ood_explain.experiments import RunConfig, resolve

SMALL = ["--preset", "smoke", "--device", "cpu"]
BASE = dict(dataset="digits", method="simclr", preset="smoke", device="cpu")


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """Nothing here may train: every refusal comes before any work, and reuse trains nothing."""
    def train(*args, **kwargs):
        raise AssertionError("trained instead of refusing or reusing")

    monkeypatch.setattr(experiments, "train", train)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``ood-explain ARGV``; argparse's SystemExit counts as a return."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, err: str, *named: str) -> None:
    """Exit code 2, one ``error:`` line naming everything in `named`, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert all(name in lines[0] for name in named), err


def fake_finished(out, auroc: float = 0.5, **settings) -> RunConfig:
    """A finished run folder for `settings` (over BASE) as run_experiment writes it, without training."""
    config = resolve(RunConfig(**{**BASE, **settings, "out": str(out)}))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"run": dataclasses.asdict(config),
                                                 "settings": experiments.model_settings(config)}))
    pd.DataFrame({"is_id": [1, 1, 0, 0], "label": [0, 0, 1, 2], "norm": [0.9, 0.8, 0.7, 0.1]}).to_csv(
        out / "scores.csv", index_label="index")
    pd.DataFrame([{"epoch": 1, "loss": 1.0, "id_norm": 1.0, "oe_norm": np.nan, "alpha": 0.0, "lr": 0.1,
                   "seconds": 1.0}]).to_csv(out / "history.csv", index=False)
    (out / "metrics.json").write_text(json.dumps({
        "score": "norm", "auroc": auroc, "aupr_in": auroc, "aupr_out": auroc, "fpr95": 0.5,
        "scores": {"norm": {"auroc": auroc, "aupr_in": auroc, "aupr_out": auroc, "fpr95": 0.5}},
        "train_seconds": 1.0, "eval_seconds": 1.0, "epochs": 1}))
    return config


def snapshot(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}  # the lock file records the PID of the last process


# ------------------------------------------------------------------------------------ the one reuse rule


def test_the_reuse_rule_reuses_same_settings_rescoring_other_evaluation_and_refuses_other_models(tmp_path):
    out = tmp_path / "run"
    assert not experiments.reusable(RunConfig(**BASE, out=str(out)))  # nothing finished yet
    fake_finished(out)
    assert experiments.reusable(RunConfig(**BASE, out=str(out)))
    assert not experiments.reusable(RunConfig(**BASE, out=str(out), views=7))  # scored again, not retrained
    with pytest.raises(ValueError, match=r"lr: 0\.1 in the folder, 0\.01 now\)\. Use a new --out folder, or --restart"):
        experiments.reusable(RunConfig(**BASE, out=str(out), lr=0.01))


def test_case_1_run_seeds_refuses_seed_folders_of_another_method(tmp_path, capsys):
    root = tmp_path / "X"
    fake_finished(root / "seed-1", method="simclr", seed=1)  # seed-0 is missing: it must not train either
    before = snapshot(root)
    code, out, err = run_cli(["run", "--dataset", "digits", "--method", "oecl", "--oe", "photos", *SMALL,
                              "--seeds", "2", "--out", str(root)], capsys)
    assert_refused(code, err, str(root / "seed-1"), "method: 'simclr' in the folder, 'oecl' now")
    assert "AUROC" not in out and snapshot(root) == before and not (root / "seed-0").exists()


def test_case_1_run_seeds_reuses_seed_folders_of_the_same_settings(tmp_path, capsys):
    root = tmp_path / "X"
    for seed, auroc in ((0, 0.25), (1, 0.75)):
        fake_finished(root / f"seed-{seed}", auroc=auroc, seed=seed)
    code, out, err = run_cli(["run", "--dataset", "digits", "--method", "simclr", *SMALL, "--seeds", "2",
                              "--out", str(root)], capsys)
    assert code == 0, err
    assert "seed 0: AUROC 0.2500" in out and "seed 1: AUROC 0.7500" in out


def test_case_2_sweep_with_another_lr_over_finished_runs_is_refused(tmp_path, capsys):
    root = tmp_path / "sweep"
    fake_finished(root / "simclr" / "class-0" / "seed-0")
    before = snapshot(root)
    code, _, err = run_cli(["sweep", "--dataset", "digits", "--methods", "simclr", "--classes", "0", "--lr", "0.01",
                            *SMALL, "--out", str(root)], capsys)
    assert_refused(code, err, "lr: 0.1 in the folder, 0.01 now", "--restart")
    assert snapshot(root) == before


def test_case_2_a_class_at_another_lr_is_not_added_to_the_table(tmp_path, capsys):
    root = tmp_path / "sweep"
    fake_finished(root / "simclr" / "class-0" / "seed-0")
    before = snapshot(root)
    code, _, err = run_cli(["sweep", "--dataset", "digits", "--methods", "simclr", "--classes", "1", "--lr", "0.01",
                            *SMALL, "--out", str(root)], capsys)
    assert_refused(code, err, "lr: 0.01 in simclr/class-1/seed-0 (asked now), 0.1 in simclr/class-0/seed-0")
    assert snapshot(root) == before and not (root / "simclr" / "class-1").exists()  # refused before training


def test_case_2_the_table_names_its_settings(tmp_path, capsys):
    root = tmp_path / "sweep"
    for k in (0, 1):
        fake_finished(root / "simclr" / f"class-{k}" / "seed-0", normal_class=k, lr=0.05)
    code, _, err = run_cli(["sweep", "--dataset", "digits", "--methods", "simclr", "--classes", "0,1",
                            "--lr", "0.05", *SMALL, "--out", str(root)], capsys)
    assert code == 0, err
    assert "lr 0.05" in (root / "results.md").read_text()


def test_a_root_whose_runs_differ_cannot_make_one_table(tmp_path):
    fake_finished(tmp_path / "simclr" / "class-0" / "seed-0")
    fake_finished(tmp_path / "simclr" / "class-1" / "seed-0", normal_class=1, weight_decay=0.0)
    with pytest.raises(ValueError, match=r"weight_decay: 0\.0005 in simclr/class-0/seed-0, 0\.0 in simclr/class-1"):
        sweeps.collect_results(tmp_path)


def test_a_table_may_hold_methods_with_other_batch_sizes_and_no_oe(tmp_path):
    # self-OECL's preset batch holds half the images; SimCLR records no OE source: one setting all the same.
    fake_finished(tmp_path / "simclr" / "class-0" / "seed-0")
    fake_finished(tmp_path / "self-oecl" / "class-0" / "seed-0", method="self-oecl")
    fake_finished(tmp_path / "oecl" / "class-0" / "seed-0", method="oecl", oe="photos")
    runs = sweeps.collect_results(tmp_path)
    assert len(runs) == 3 and runs.attrs["settings"]["oe"] == "photos"
    assert runs.attrs["settings"]["batch_size"] == {"simclr": 32, "self-oecl": 16, "oecl": 32}


def test_case_3_reproduce_with_another_oe_uses_its_own_default_folder(tmp_path, data_root):
    default = rp.default_root("fashion-mnist-one-vs-rest", "lite")
    assert default == rp.default_root("fashion-mnist-one-vs-rest", "lite", oe="mnist")  # the table's own OE
    photos = rp.default_root("fashion-mnist-one-vs-rest", "lite", oe="photos")
    assert photos != default and "oe-photos" in str(photos)
    assert "oe-imagefolder_data_oe" in str(rp.default_root("fashion-mnist-one-vs-rest", "lite", oe="imagefolder:data/oe"))
    # ... and an explicit --out holding MNIST-OE runs is refused under photos, before any training.
    run = tmp_path / "oecl" / "class-0" / "seed-0"
    fake_finished(run, dataset="fashion-mnist", method="oecl", oe="mnist")
    with pytest.raises(ValueError, match="oe: 'mnist' in the folder, 'photos' now"):
        rp.reproduce("fashion-mnist-one-vs-rest", preset="smoke", out=tmp_path, data_root=str(data_root),
                     oe="photos", classes=[0], methods=["oecl"], progress=False)


def test_case_4_quickstart_of_another_preset_is_refused_and_defaults_apart(tmp_path):
    assert qs.default_out("lite") != qs.default_out("smoke")
    for method, oe in (("simclr", None), ("self-oecl", None), ("oecl", "photos")):
        fake_finished(tmp_path / method / "class-0" / "seed-0", method=method, oe=oe)
    with pytest.raises(ValueError, match="preset: 'smoke' in the folder, 'lite' now"):
        qs.quickstart(tmp_path, classes=[0], preset="lite", seeds=1, progress=False)
    assert not (tmp_path / "results.md").exists()


def tiny_tree(root, classes=("cat", "cow", "dog"), test_classes=None, seed=0) -> None:
    """An ImageFolder tree with 8x8 gray PNGs: 4 training and 2 test images per class."""
    rng = np.random.default_rng(seed)
    for split, count, names in (("train", 4, classes), ("test", 2, test_classes or classes)):
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / split / name / f"{i}.png")


def test_case_5_an_image_folder_run_is_not_reused_for_another_data_root(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    tiny_tree(first)
    tiny_tree(second, seed=1)
    out = tmp_path / "run"
    fake_finished(out, dataset="imagefolder", data_root=str(first))
    before = snapshot(out)
    assert experiments.reusable(RunConfig(**{**BASE, "dataset": "imagefolder"}, data_root=str(first), out=str(out)))
    other = RunConfig(**{**BASE, "dataset": "imagefolder"}, data_root=str(second), out=str(out))
    with pytest.raises(ValueError, match=re.escape(f"data_root: '{first}' in the folder, '{second}' now")):
        experiments.reusable(other)
    with pytest.raises(ValueError, match="data_root"):
        experiments.run_experiment(other, progress=False)
    assert snapshot(out) == before  # config.json still names the first root


def test_case_5_the_data_root_of_other_datasets_may_change(tmp_path, data_root):
    out = tmp_path / "run"
    fake_finished(out, data_root=str(tmp_path))
    assert experiments.reusable(RunConfig(**BASE, data_root=str(data_root), out=str(out)))


def test_the_notebooks_load_or_run_goes_through_the_rule(tmp_path):
    config = nb.config("simclr", 0, preset="smoke", root=tmp_path)
    out = Path(config.out)
    fake_finished(out, **{k: v for k, v in dataclasses.asdict(config).items()
                          if k not in ("out", "lr")}, lr=0.05)
    with pytest.raises(ValueError, match=r"lr: 0\.05 in the folder, 0\.1 now"):
        nb.load_or_run(config, verbose=False)
    fake_finished(out, **{k: v for k, v in dataclasses.asdict(config).items() if k != "out"}, auroc=0.625)
    assert nb.load_or_run(config, verbose=False).auroc() == 0.625


def test_a_folder_another_tool_made_is_one_line(tmp_path, capsys):
    for name, text in (("config.json", json.dumps({"experiment": "resnet", "lr": 0.1})),
                       ("metrics.json", json.dumps({"accuracy": 0.9})), ("history.csv", "step,loss\n1,0.5\n"),
                       ("scores.csv", "id,score\n0,1\n")):
        (tmp_path / name).write_text(text)
    code, _, err = run_cli(["report", str(tmp_path)], capsys)
    assert_refused(code, err, str(tmp_path / "config.json"), "not an ood-explain run folder")
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(ValueError, match="not an ood-explain run folder"):
        experiments.reusable(RunConfig(**BASE, out=str(tmp_path)))


# ------------------------------------------------------------------------------------------------- tables


def synthetic_runs() -> pd.DataFrame:
    """simclr: class 0 over seeds 0, 4, 7; class 1 over seeds 0 and 4 only."""
    rows = [{"method": "simclr", "class": k, "seed": s, "auroc": a, "seconds": 1.0}
            for k, s, a in ((0, 0, 0.6), (0, 4, 0.7), (0, 7, 0.8), (1, 0, 0.3), (1, 4, 0.4))]
    return pd.DataFrame(rows)


def test_case_7_cells_over_fewer_seeds_say_how_many(tmp_path):
    runs = synthetic_runs()
    summary = sweeps.summarize(runs)
    table = sweeps.format_summary(summary)
    assert table.loc[0, "simclr"] == "70.0 ± 10.0"
    assert table.loc[1, "simclr"] == "35.0 ± 7.1 (n = 2)"
    assert table.loc["mean", "simclr"] == "50.0 ± 7.1 (n = 2)"  # seeds 0 and 4 finished every class
    sweeps.write_results(runs, summary, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "over seeds 0, 4, 7 (3 seed(s))" in text  # seeds named by their values
    assert "simclr class 1: seeds 0, 4" in text and "(n = 2)" in text


def test_a_complete_table_is_formatted_as_before():
    runs = synthetic_runs()
    runs = runs[runs["seed"] != 7]
    assert "n =" not in sweeps.format_summary(sweeps.summarize(runs)).to_markdown()


# ------------------------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("text, message", [
    ("0", "at least 1"), ("3,", "empty item"), (",3", "empty item"), ("1,,2", "empty item"),
    ("1,1", "seed 1 is listed more than once"), ("0,4,0", "seed 0 is listed more than once"), ("", "count"),
    ("a", "count"), ("-1", "count"), ("1.5", "count"), (str(2**32), "at most"), (f"0,{2**32}", "0 to"),
])
def test_case_8_seeds_are_parsed_strictly(text, message):
    with pytest.raises(ValueError, match=message):
        sweeps.seed_list(text)


def test_case_8_valid_seeds_mean_what_they_did():
    assert sweeps.seed_list("3") == [0, 1, 2] and sweeps.seed_list(" 2 ") == [0, 1]
    assert sweeps.seed_list("0,4,7") == [0, 4, 7] and sweeps.seed_list("7, 4") == [7, 4]
    assert sweeps.seed_list(1) == [0] and sweeps.seed_list([5]) == [5]
    for bad in (0, [], [1, 1], [-1], True):
        with pytest.raises(ValueError):
            sweeps.seed_list(bad)


@pytest.mark.parametrize("seeds", ["0", "1,1", "3,"])
@pytest.mark.parametrize("command", [
    ["run", "--dataset", "digits", *SMALL, "--out", "{out}"],
    ["sweep", "--dataset", "digits", *SMALL, "--out", "{out}"],
    ["quickstart", "--preset", "smoke", "--out", "{out}"],
    ["reproduce", "fashion-mnist-one-vs-rest", "--out", "{out}"],
    ["reproduce", "fashion-mnist-budget", "--out", "{out}"],
    ["claims", "--out", "{out}", "--runs", "{out}/runs"],
], ids=["run", "sweep", "quickstart", "reproduce", "budget", "claims"])
def test_case_8_every_command_refuses_the_same_seeds(command, seeds, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli([a.replace("{out}", str(out)) for a in command] + ["--seeds", seeds], capsys)
    assert_refused(code, err, "--seeds")
    assert not out.exists()


def test_seeds_help_says_what_0_means(capsys):
    code, help_text, _ = run_cli(["run", "--help"], capsys)
    help_text = " ".join(help_text.split())
    assert code == 0 and "a count (3 -> seeds 0, 1, 2; at least 1)" in help_text and "--seed S" in help_text


# ------------------------------------------------------------------------------------------------- cache


def write_pgm(path, value: int) -> None:
    """An 8x8 gray PGM of one value: every such file has the same size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def test_case_6_the_image_cache_sees_new_content_under_the_old_size_and_mtime(tmp_path):
    root = tmp_path / "tree"
    write_pgm(root / "cat" / "0.pgm", 10)
    write_pgm(root / "dog" / "0.pgm", 200)
    stamps = {p: p.stat() for p in root.rglob("*.pgm")}
    assert data.load_image_folder(root).images[:, 0, 0, 0].tolist() == [10, 200]
    # A relabelled copy unpacked in its place: the two images swap classes, sizes and mtimes stay.
    write_pgm(root / "cat" / "0.pgm", 200)
    write_pgm(root / "dog" / "0.pgm", 10)
    for path, stat in stamps.items():
        assert path.stat().st_size == stat.st_size
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data.load_image_folder(root).images[:, 0, 0, 0].tolist() == [200, 10]


def test_a_cache_that_cannot_be_written_warns_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    write_pgm(root / "a" / "0.pgm", 5)

    def full(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.warns(UserWarning, match="could not cache"):
        loaded = data.load_image_folder(root)
    assert loaded.images[0, 0, 0, 0] == 5
    assert not list(data.cache_dir().glob("*.tmp"))
