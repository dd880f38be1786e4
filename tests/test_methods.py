"""The method registry: a new method is one record, and everything else (training, runs, scores, tables)
follows from it."""

from __future__ import annotations

import json

import pytest
import torch

from ood_explain import losses, methods
from ood_explain.experiments import runs as experiments
from ood_explain.experiments import RunConfig
from ood_explain.core.methods import Forward, Method


def spread_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    """A toy objective: NT-Xent on the ID views plus alpha times the mean squared OE norm."""
    return losses.nt_xent(forward.z_id, temperature) + alpha * forward.z_oe.pow(2).sum(dim=1).mean()


TOY = Method("toy-squared-oe", "toy: NT-Xent + alpha * mean ||z_oe||^2 on rotated views", methods.rotated_views,
             spread_loss, main_score="norm", own_scores={"minus_norm": lambda f: -f.z.norm(dim=1)},
             oe_norm_term=True, rows_per_image=2)


@pytest.fixture
def toy_registered():
    methods.register(TOY)
    yield TOY
    del methods.REGISTRY[TOY.name]


@pytest.mark.slow
def test_a_toy_method_added_through_the_registry_trains_end_to_end(toy_registered, tmp_path):
    config = RunConfig(dataset="digits", normal_class=3, method=TOY.name, oe="photos", preset="smoke",
                       device="cpu", out=str(tmp_path / "toy"), test_limit=80, train_eval_limit=80)
    run = experiments.run_experiment(config, progress=False)
    assert run.config.oe is None  # no external OE: the ignored setting is not recorded
    assert run.config.batch_size == experiments.PRESETS["smoke"]["instances_per_batch"] // 2  # its batch rule
    assert run.metrics["score"] == "norm" and "minus_norm" in run.metrics["scores"]
    assert run.metrics["scores"]["minus_norm"]["auroc"] == pytest.approx(1 - run.metrics["scores"]["norm"]["auroc"])
    assert run.history["alpha"].tolist() == [0.0, 1.0]  # its OE term has the warm-up
    assert (run.history["oe_norm"] > 0).all()
    loaded = experiments.Run.load(tmp_path / "toy")
    assert loaded.metrics == json.loads(json.dumps(run.metrics)) and loaded.method == TOY.name
    torch.testing.assert_close(loaded.model.state_dict()["head.3.weight"], run.model.state_dict()["head.3.weight"])


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown method 'csi'; choose one of simclr, oecl"):
        methods.get("csi")
    with pytest.raises(ValueError, match="'oecl' is a built-in method and cannot be replaced"):
        methods.register(methods.OECL)
    with pytest.raises(ValueError, match="'oecl' is a built-in method and cannot be removed"):
        methods.unregister("oecl")


def test_records_say_what_each_method_needs():
    external = {name for name in methods.names() if methods.get(name).external_oe}
    assert external == {"oecl", "hsc", "bce"}
    assert [name for name in methods.names() if methods.get(name).classifier] == ["bce"]
    assert methods.get("self-oecl").images_per_batch(64) == 32 and methods.get("oecl").images_per_batch(64) == 64


def test_a_run_looks_its_method_up_once(tmp_path, monkeypatch):
    """The config's method becomes its record once per run (resolve), and that record goes everywhere."""
    looked_up, real = [], methods.get

    def counting(name, source=None):
        looked_up.append(name)
        return real(name, source)

    monkeypatch.setattr(methods, "get", counting)
    config = RunConfig(dataset="digits", method="oecl", oe="photos", preset="smoke", device="cpu", test_limit=40,
                       train_eval_limit=40, out=str(tmp_path / "run"))
    run = experiments.run_experiment(config, progress=False)
    assert looked_up == ["oecl"] and 0 <= run.metrics["auroc"] <= 1


def test_batch_size_counts_images_everywhere_and_a_preset_counts_instances():
    """One unit: a run's batch_size, TrainConfig's and --batch-size are ID images per step; the preset says
    instances, so self-OECL's run takes half as many images (each gives two ID instances, 0° and 90°)."""
    preset = {**experiments.PRESETS["lite"], **experiments.DATASET_PRESETS[("digits", "lite")]}
    assert "batch_size" not in preset and preset["instances_per_batch"] == 64
    for method, images in (("simclr", 64), ("self-oecl", 32)):
        config = experiments.resolve(RunConfig(dataset="digits", method=method, preset="lite"))
        assert config.batch_size == images == experiments.train_config(config).batch_size
    chosen = experiments.resolve(RunConfig(dataset="digits", method="self-oecl", preset="lite", batch_size=64))
    assert experiments.train_config(chosen).batch_size == 64  # given by hand: images, as in TrainConfig
