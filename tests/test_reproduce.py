"""`ood-explain reproduce`: named tables, resumability, the paper column, and parallel one-class jobs."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from ood_explain import reproduce as rp
from ood_explain import sweeps
from ood_explain.experiments import RunConfig, resolve, workers


def test_unknown_table_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cifar10-one-vs-rest"):
        rp.reproduce("imagenet-30", out=tmp_path)


def test_tables_name_the_paper_numbers():
    assert rp.TABLES["cifar10-one-vs-rest"].paper == {"self-oecl": 94.7, "oecl": 97.8, "hsc": 95.9}
    assert rp.TABLES["cifar10-leave-one-out"].paper["oecl"] == 94.6
    assert set(rp.TABLES["cifar10-leave-one-out"].methods) == {"simclr", "oecl", "hsc", "bce"}


def test_paper_preset_follows_the_official_settings():
    oecl = resolve(RunConfig(dataset="cifar10", method="oecl", oe="cifar100", preset="paper"))
    assert (oecl.arch, oecl.epochs, oecl.batch_size, oecl.views, oecl.warmup_epochs) == ("resnet18-cifar", 1000, 64, 32, 50)
    loo = resolve(RunConfig(dataset="cifar10", protocol="leave-one-out", method="oecl", oe="cifar100", preset="paper"))
    assert loo.epochs == 500
    self_oecl = resolve(RunConfig(dataset="cifar10", method="self-oecl", preset="paper"))
    assert self_oecl.batch_size == 32  # 32 images -> 64 rotated instances per view


@pytest.mark.slow
def test_reproduce_writes_a_table_and_skips_finished_runs(tmp_path, data_root, capsys):
    out = tmp_path / "table"
    results = rp.reproduce("fashion-mnist-one-vs-rest", preset="smoke", out=out, data_root=str(data_root),
                           classes=[0], methods=["simclr", "oecl"], progress=False)
    assert list(results["mean"].columns) == ["simclr", "oecl"]
    assert list(results.index) == [0, "mean"]
    assert 0.0 <= results.loc[0, ("mean", "oecl")] <= 1.0 and results.loc[0, ("n", "oecl")] == 1
    text = (out / "results.md").read_text()
    assert "OE: mnist" in text and "fashion-mnist" in text and "1 seed(s)" in text
    saved = pd.read_csv(out / "results.csv")
    assert list(saved.columns) == ["method", "class", "seed", "auroc", "seconds"] and len(saved) == 2
    assert saved.set_index("method").loc["simclr", "auroc"] == pytest.approx(results.loc[0, ("mean", "simclr")], abs=1e-4)
    stamp = (out / "oecl" / "class-0" / "seed-0" / "metrics.json").stat().st_mtime_ns
    rp.reproduce("fashion-mnist-one-vs-rest", preset="smoke", out=out, data_root=str(data_root),
                 classes=[0], methods=["simclr", "oecl"], progress=False)
    assert (out / "oecl" / "class-0" / "seed-0" / "metrics.json").stat().st_mtime_ns == stamp
    text = (out / "results.md").read_text()  # nothing ran: no invocation note, the runs' own time stays
    assert "This invocation" not in text and "2 runs took" in text


def test_shorter_paper_runs_keep_the_warmup_share():
    short = resolve(RunConfig(dataset="cifar10", method="oecl", oe="photos", preset="paper", epochs=100))
    assert (short.epochs, short.warmup_epochs) == (100, 5)  # 50 of 1000 -> 5 of 100
    chosen = resolve(RunConfig(dataset="cifar10", method="oecl", oe="photos", preset="paper", epochs=100, warmup_epochs=0))
    assert chosen.warmup_epochs == 0


@pytest.mark.slow
def test_reproduce_with_fewer_epochs_uses_its_own_folder_and_says_so(tmp_path, data_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = rp.reproduce("fashion-mnist-one-vs-rest", preset="smoke", data_root=str(data_root), classes=[1],
                           methods=["oecl"], progress=False, epochs=3, warmup_epochs=1)
    root = tmp_path / "runs" / "reproduce" / "fashion-mnist-one-vs-rest-smoke-3-epochs"
    config = json.loads((root / "oecl" / "class-1" / "seed-0" / "config.json").read_text())
    assert (config["train"]["epochs"], config["train"]["warmup_epochs"]) == (3, 1)
    assert "3 epochs with 1 warm-up instead of the preset's" in (root / "results.md").read_text()
    assert 0.0 <= results.loc[1, ("mean", "oecl")] <= 1.0


def test_a_subprocess_run_gets_the_whole_config():
    config = resolve(RunConfig(dataset="cifar10", method="oecl", oe="photos", preset="paper", epochs=20,
                               compile=True, alpha=0.1, views=8, out="x"))
    task = json.loads(workers.task_line(config, restart=True))
    assert RunConfig(**task["config"]) == config and task["restart"]  # every field, not a subset of flags
    assert task["target"] == workers.TRAIN_ONE  # each task names what the worker does with it
    assert workers.worker_command()[1:] == ["-m", "ood_explain.experiments.workers"]


def test_cifar_table_adds_the_paper_row(tmp_path, data_root, monkeypatch):
    # Reuse finished fake runs: the table logic must add the paper row without training anything.
    out = tmp_path / "cifar"
    for method in ("oecl", "self-oecl"):
        run = out / method / "class-0" / "seed-0"
        run.mkdir(parents=True)
        made = resolve(RunConfig(dataset="cifar10", method=method, oe="photos", preset="paper", out=str(run)))
        (run / "config.json").write_text(json.dumps({"run": dataclasses.asdict(made)}))  # made with these settings
        (run / "metrics.json").write_text(json.dumps({"auroc": 0.5}))
    results = rp.reproduce("cifar10-one-vs-rest", preset="paper", out=out, data_root=str(data_root),
                           classes=[0], methods=["self-oecl", "oecl"], oe="photos", progress=False)
    assert results.loc["mean", ("mean", "oecl")] == 0.5
    text = (out / "results.md").read_text()
    assert "OE: photos" in text and "oecl 97.8" in text and "self-oecl 94.7" in text


@pytest.mark.slow
def test_parallel_jobs_run_as_subprocesses(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_DATA", str(data_root))
    configs = [RunConfig(dataset="digits", method="simclr", normal_class=k, preset="smoke", test_limit=50,
                         out=str(tmp_path / "simclr" / f"class-{k}")) for k in (0, 1)]
    sweeps.run_in_subprocesses(configs, slots=[{"OMP_NUM_THREADS": "1"}] * 2)
    for config in configs:
        metrics = json.loads((tmp_path / "simclr" / f"class-{config.normal_class}" / "metrics.json").read_text())
        assert 0.0 <= metrics["auroc"] <= 1.0


@pytest.mark.slow
def test_a_failing_parallel_job_is_reported(tmp_path):
    bad = RunConfig(dataset="digits", method="simclr", normal_class=42, preset="smoke", out=str(tmp_path / "bad"))
    with pytest.raises(RuntimeError, match="runs failed"):
        sweeps.run_in_subprocesses([bad], slots=[{}])
    assert "out of range" in (tmp_path / "bad.log").read_text()


@pytest.mark.slow
def test_budget_study_runs_each_budget_and_plots_auroc_against_steps(tmp_path, data_root, monkeypatch):
    from ood_explain.experiments import runs as experiments

    monkeypatch.setitem(experiments.PRESETS, "lite", {**experiments.PRESETS["lite"], "instances_per_batch": 16,
                                                      "test_limit": 40, "train_eval_limit": 40, "views": 1})
    from ood_explain.teaching import viz

    images = []
    monkeypatch.setattr(viz, "write_static_image", lambda figure, path: images.append(path) or f"figure: {path}")
    table = rp.budget_study("fashion-mnist-budget", out=tmp_path, data_root=str(data_root), seeds=2, steps=[25, 50],
                            methods=["simclr", "oecl"], classes=[0], progress=False)
    assert sorted(set(table["steps"])) == [25, 50] and set(table["method"]) == {"simclr", "oecl"}
    assert (table["seeds"] == 2).all() and table["auroc_std"].notna().all()
    longest = json.loads((tmp_path / "steps-50" / "oecl" / "class-0" / "seed-1" / "config.json").read_text())
    assert (longest["train"]["epochs"], longest["train"]["warmup_epochs"]) == (2, 0)  # lite's share: 1 of 6
    shortest = json.loads((tmp_path / "steps-25" / "simclr" / "class-0" / "seed-0" / "config.json").read_text())
    assert shortest["train"]["max_steps_per_epoch"] == 25 and shortest["train"]["epochs"] == 1
    assert "±" in (tmp_path / "budget.md").read_text()
    assert viz.write_budget_report(table, tmp_path).startswith(f"report: {tmp_path / 'budget.html'}")
    assert (tmp_path / "budget.html").stat().st_size > 10_000
    assert images == [tmp_path / "budget.png"]
    with pytest.raises(ValueError, match="multiple of 25 steps"):
        rp.budget_epochs(100 + 1)


def test_a_static_image_that_cannot_be_written_says_why(tmp_path):
    class NoExporter:
        def write_image(self, path, width, height):
            raise ValueError("Image export using the \"kaleido\" engine requires the kaleido package.\nmore")

    from ood_explain.teaching import viz

    message = viz.write_static_image(NoExporter(), tmp_path / "budget.png")
    assert message == ('budget.png not written (ValueError: Image export using the "kaleido" engine requires the '
                       'kaleido package.)')
    assert not (tmp_path / "budget.png").exists()
