"""End to end: one smoke run per method on real data (Fashion-MNIST, OE = the MNIST subset), the run
folder's files, rerunning, resuming an interrupted run, presets and sweeps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from ood_explain import methods, metrics, sweeps
from ood_explain.experiments import runs as experiments
from ood_explain import training as train_module
from ood_explain.experiments import RunConfig


METHODS = ["simclr", "self-oecl", "oecl", "hsc", "bce"]
SMOKE = experiments.PRESETS["smoke"]
SCORE_COLUMNS = {"norm", "norm_of_mean", "mean_sq_norm", "cosine_nn", "csi", "knn"}


def smoke_config(method: str, out, data_root, **overrides) -> RunConfig:
    settings = dict(dataset="fashion-mnist", protocol="one-vs-rest", normal_class=1, method=method, oe="mnist",
                    preset="smoke", data_root=str(data_root), device="cpu", out=str(out))
    settings.update(overrides)
    return RunConfig(**settings)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, data_root):
    """method -> (run folder, returned metrics), each run made once per module on first use."""
    cache: dict[str, tuple] = {}

    def get(method: str):
        if method not in cache:
            out = tmp_path_factory.mktemp("runs") / method
            cache[method] = out, experiments.run_experiment(smoke_config(method, out, data_root), progress=False).metrics
        return cache[method]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_smoke_run_writes_a_complete_run_folder(method, smoke_runs):
    out, result = smoke_runs(method)
    for name in ("config.json", "metrics.json", "scores.csv", "history.csv", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp"))

    config = json.loads((out / "config.json").read_text())
    assert config["run"]["method"] == method and config["run"]["epochs"] == SMOKE["epochs"]
    assert config["run"]["arch"] == "small-cnn" and config["train"]["warmup_epochs"] == SMOKE["warmup_epochs"]
    assert config["data"]["id_train"] == 6000 and config["data"]["id_test"] == 1000
    assert config["data"]["ood_test"] == 9000
    uses_oe = method in ("oecl", "hsc", "bce")
    assert config["data"]["oe_images"] == (8000 if uses_oe else 0)
    assert (config["data"]["oe"] is not None) == uses_oe  # SimCLR and self-OECL never use the external OE

    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert {"auroc", "aupr_in", "aupr_out", "fpr95", "score", "scores"} <= set(saved)
    assert saved["score"] == methods.get(method).main_score and saved["epochs"] == SMOKE["epochs"]
    expected_scores = SCORE_COLUMNS | set(methods.get(method).own_scores)
    assert set(saved["scores"]) == expected_scores
    for name, block in saved["scores"].items():
        assert set(block) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
        assert all(0.0 <= value <= 1.0 for value in block.values()), name
    assert {k: saved[k] for k in ("auroc", "aupr_in", "aupr_out", "fpr95")} == saved["scores"][saved["score"]]

    table = pd.read_csv(out / "scores.csv")
    n_test = SMOKE["test_limit"]  # test_limit ID + test_limit OOD samples
    assert len(table) == 2 * n_test and table["is_id"].sum() == n_test
    assert set(table["is_id"]) == {0, 1}
    assert expected_scores <= set(table.columns)
    assert (table.loc[table["is_id"] == 1, "label"] == 1).all() and (table.loc[table["is_id"] == 0, "label"] != 1).all()
    assert np.isfinite(table[sorted(expected_scores)].to_numpy()).all()
    # The metrics are those of the per-sample scores (the CSV keeps 6 significant digits).
    main = table[saved["score"]].to_numpy()
    is_id = table["is_id"].to_numpy().astype(bool)
    assert metrics.auroc(main[is_id], main[~is_id]) == pytest.approx(saved["auroc"], abs=2e-3)

    history = pd.read_csv(out / "history.csv")
    assert len(history) == SMOKE["epochs"] and history["epoch"].tolist() == [1, 2]
    assert {"loss", "id_norm", "oe_norm", "alpha", "lr"} <= set(history.columns)
    assert np.isfinite(history["loss"]).all()
    if method in ("oecl", "self-oecl"):
        assert history["alpha"].tolist() == [0.0, 1.0]  # one warm-up epoch in the smoke preset

    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == SMOKE["epochs"] and state["config"]["method"] == method
    assert len(state["history"]) == SMOKE["epochs"]


@pytest.mark.slow
def test_rerun_does_not_train_again(smoke_runs, data_root):
    out, first = smoke_runs("oecl")
    checkpoint = (out / "checkpoint.pt").read_bytes()
    history = (out / "history.csv").read_text()
    again = experiments.run_experiment(smoke_config("oecl", out, data_root), progress=False).metrics
    assert (out / "checkpoint.pt").read_bytes() == checkpoint  # nothing trained, nothing rewritten
    assert (out / "history.csv").read_text() == history
    assert again["scores"] == first["scores"]  # the same model, the same seeded test views


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(smoke_runs, tmp_path, data_root, monkeypatch):
    _, straight = smoke_runs("oecl")
    out = tmp_path / "interrupted"
    real_save = train_module.save_checkpoint

    def save_then_die(target, state):
        real_save(target, state)
        raise KeyboardInterrupt  # after the first epoch's checkpoint

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment(smoke_config("oecl", out, data_root), progress=False)
    monkeypatch.undo()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (out / "metrics.json").exists()
    resumed = experiments.run_experiment(smoke_config("oecl", out, data_root), progress=False).metrics
    assert resumed["epochs"] == 2
    assert resumed["scores"] == straight["scores"]
    history = pd.read_csv(out / "history.csv")  # training time counts the epoch before the interruption too
    assert resumed["train_seconds"] == pytest.approx(history["seconds"].sum(), abs=0.01)
    assert history["seconds"].iloc[0] > 0


def test_resolve_presets():
    config = experiments.resolve(RunConfig(dataset="digits", method="simclr", preset="smoke"))
    assert (config.arch, config.epochs, config.batch_size, config.views) == ("small-cnn", 2, 32, 2)
    explicit = experiments.resolve(RunConfig(dataset="digits", method="simclr", preset="smoke", epochs=5))
    assert explicit.epochs == 5  # explicit values win over the preset
    paper = experiments.resolve(RunConfig(dataset="cifar10", method="self-oecl", preset="paper"))
    assert (paper.arch, paper.epochs, paper.batch_size, paper.views, paper.warmup_epochs) == (
        "resnet18-cifar", 1000, 32, 32, 50)
    loo = experiments.resolve(RunConfig(dataset="cifar10", protocol="leave-one-out", method="oecl", oe="cifar100",
                                        preset="paper"))
    assert loo.epochs == 500 and loo.batch_size == 64


@pytest.mark.parametrize("field, value, message", [
    ("preset", "huge", "unknown preset"), ("method", "csi", "unknown method"),
    ("dataset", "imagenet", "unknown dataset"), ("protocol", "one-vs-one", "unknown protocol"),
])
def test_resolve_rejects_bad_names(field, value, message):
    config = dataclasses.replace(RunConfig(method="simclr"), **{field: value})
    with pytest.raises(ValueError, match=message):
        experiments.resolve(config)


@pytest.mark.parametrize("method", ["oecl", "hsc", "bce"])
def test_oe_methods_need_an_oe_source(method):
    with pytest.raises(ValueError, match="needs an OE source"):
        experiments.resolve(RunConfig(method=method, oe=None))


@pytest.mark.slow
def test_leave_one_out_with_few_shot_outlier_classes(tmp_path):
    out = tmp_path / "loo"
    config = RunConfig(dataset="digits", protocol="leave-one-out", normal_class=4, method="oecl",
                       oe="outlier-classes", oe_shots=3, preset="smoke", device="cpu", out=str(out), test_limit=50,
                       train_eval_limit=50)
    result = experiments.run_experiment(config, progress=False).metrics
    record = json.loads((out / "config.json").read_text())["data"]
    assert record["oe_images"] == 3 and record["oe_source"] == "outlier-classes (3 per class)"
    table = pd.read_csv(out / "scores.csv")
    assert (table.loc[table["is_id"] == 0, "label"] == 4).all() and (table.loc[table["is_id"] == 1, "label"] != 4).all()
    assert 0 <= result["auroc"] <= 1


@pytest.mark.slow
def test_sweep_over_seeds_aggregates_and_resumes_with_a_seed_missing(tmp_path):
    base = RunConfig(dataset="digits", preset="smoke", device="cpu", test_limit=60, train_eval_limit=60)
    summary = sweeps.sweep(base, ["simclr"], tmp_path, classes=[0, 2], seeds=2, progress=False)
    runs = pd.read_csv(tmp_path / "results.csv")
    assert len(runs) == 4 and set(runs["seed"]) == {0, 1}  # every seed's value is kept
    values = {(r["class"], r["seed"]): r["auroc"] for _, r in runs.iterrows()}
    for k in (0, 2):
        on_disk = [json.loads((tmp_path / "simclr" / f"class-{k}" / f"seed-{s}" / "metrics.json").read_text())["auroc"]
                   for s in (0, 1)]
        assert [values[(k, s)] for s in (0, 1)] == pytest.approx(on_disk, abs=1e-4)
        assert summary.loc[k, ("mean", "simclr")] == pytest.approx(np.mean(on_disk))
        assert summary.loc[k, ("std", "simclr")] == pytest.approx(np.std(on_disk, ddof=1))
    class_means = [np.mean([values[(0, s)], values[(2, s)]]) for s in (0, 1)]
    assert summary.loc["mean", ("mean", "simclr")] == pytest.approx(np.mean(class_means), abs=1e-4)
    assert summary.loc["mean", ("std", "simclr")] == pytest.approx(np.std(class_means, ddof=1), abs=1e-4)
    assert " ± " in (tmp_path / "results.md").read_text()

    # Resume with one seed's run missing: only that run trains again, the others are kept as they are.
    stamp = (tmp_path / "simclr" / "class-0" / "seed-0" / "metrics.json").stat().st_mtime_ns
    missing = tmp_path / "simclr" / "class-2" / "seed-1"
    (missing / "metrics.json").unlink()
    partial = sweeps.summarize(sweeps.collect_results(tmp_path))
    assert partial.loc[2, ("n", "simclr")] == 1 and np.isnan(partial.loc[2, ("std", "simclr")])
    assert partial.loc["mean", ("n", "simclr")] == 1  # seed 1 no longer covers every class
    again = sweeps.sweep(base, ["simclr"], tmp_path, classes=[0, 2], seeds=2, progress=False)
    assert (tmp_path / "simclr" / "class-0" / "seed-0" / "metrics.json").stat().st_mtime_ns == stamp
    assert (missing / "metrics.json").exists()
    assert again.loc["mean", ("mean", "simclr")] == pytest.approx(summary.loc["mean", ("mean", "simclr")], abs=1e-4)
    with pytest.raises(FileNotFoundError):
        sweeps.collect_results(tmp_path / "empty")


def test_seed_list_from_a_count_or_a_list():
    assert sweeps.seed_list(3) == [0, 1, 2] and sweeps.seed_list("3") == [0, 1, 2]
    assert sweeps.seed_list("0,4,7") == [0, 4, 7] and sweeps.seed_list([5]) == [5]
    for bad in ("", "a,b", 0):
        with pytest.raises(ValueError, match="seeds"):
            sweeps.seed_list(bad)
