"""A run folder holds one configuration: reuse under another setting is refused before anything is
written, a restart clears old results first, two processes never write one folder, and metrics.json (the
finished marker) is written last."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from ood_explain.experiments import runs as experiments
from ood_explain import training as train_module
from ood_explain.experiments import RunConfig


def tiny(out, **overrides) -> RunConfig:
    settings = dict(dataset="digits", normal_class=0, method="simclr", preset="smoke", device="cpu", out=str(out),
                    test_limit=40, train_eval_limit=40)
    return RunConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished SimCLR smoke run folder (class 0, seed 0) and the bytes of its files."""
    out = tmp_path_factory.mktemp("folder") / "run"
    experiments.run_experiment(tiny(out), progress=False)
    return out


def snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("change", [
    dict(normal_class=1), dict(dataset="fashion-mnist"), dict(protocol="leave-one-out"), dict(arch="resnet18-cifar"),
    dict(image_size=32), dict(seed=1), dict(method="oecl", oe="photos"), dict(lr=0.05), dict(epochs=3),
])
def test_reuse_under_another_shaping_setting_is_refused_and_writes_nothing(finished, change, data_root):
    before = snapshot(finished)
    config = tiny(finished, data_root=str(data_root), **change)
    with pytest.raises(ValueError, match="cannot resume .*checkpoint.pt.*--restart"):
        experiments.run_experiment(config, progress=False)
    assert snapshot(finished) == before  # config.json, results and checkpoint untouched


@pytest.mark.slow
def test_a_different_oe_source_is_refused(tmp_path):
    out = tmp_path / "oecl"
    experiments.run_experiment(tiny(out, method="oecl", oe="photos"), progress=False)
    before = snapshot(out)
    with pytest.raises(ValueError, match="oe: 'photos' in the checkpoint, 'outlier-classes' now"):
        experiments.run_experiment(tiny(out, method="oecl", oe="outlier-classes"), progress=False)
    assert snapshot(out) == before


@pytest.mark.slow
def test_evaluation_settings_may_change_on_a_finished_folder(finished):
    run = experiments.run_experiment(tiny(finished, test_limit=20), progress=False)
    assert len(run.scores) == 40  # 20 ID + 20 OOD, rescored with the same model
    assert json.loads((finished / "config.json").read_text())["run"]["test_limit"] == 20
    experiments.run_experiment(tiny(finished), progress=False)  # back to the module's settings


@pytest.mark.slow
def test_an_interrupted_restart_leaves_no_old_results(tmp_path, monkeypatch):
    out = tmp_path / "run"
    experiments.run_experiment(tiny(out), progress=False)

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", die)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment(tiny(out, seed=1), resume=False, progress=False)
    assert not experiments.is_finished(out)
    assert not (out / "scores.csv").exists() and not (out / "history.csv").exists()
    assert json.loads((out / "config.json").read_text())["run"]["seed"] == 1
    monkeypatch.undo()
    run = experiments.run_experiment(tiny(out, seed=1), progress=False)  # a sweep would now resume it
    assert run.config.seed == 1 and experiments.is_finished(out)


@pytest.mark.slow
def test_metrics_json_is_written_last(tmp_path, monkeypatch):
    order = []
    real_write_text = type(tmp_path).write_text

    def recording_write_text(self, *args, **kwargs):
        order.append(self.name)
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "write_text", recording_write_text)
    experiments.run_experiment(tiny(tmp_path / "run"), progress=False)
    assert order[-1] == "metrics.json" and order[0] == "config.json"


@pytest.mark.slow
def test_a_folder_in_use_by_a_live_process_is_refused_and_freed_when_it_dies(tmp_path):
    out = tmp_path / "run"
    holder_code = ("import sys, time; from pathlib import Path; from ood_explain.experiments import folder_lock\n"
                   "with folder_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(experiments.RunFolderInUse, match=f"in use by PID {holder.pid}"):
            experiments.run_experiment(tiny(out), progress=False)
        assert not (out / "config.json").exists()
    finally:
        holder.kill()  # a crash: the holder never releases the lock itself
        holder.wait()
    run = experiments.run_experiment(tiny(out), progress=False)  # the kernel freed the dead holder's lock
    assert experiments.is_finished(out) and run.metrics["epochs"] == 2
    with experiments.folder_lock(out):  # and this run released its own
        assert (out / ".lock").read_text() == str(os.getpid())


@pytest.mark.slow
def test_two_concurrent_runs_into_one_folder(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from ood_explain.experiments import runs as experiments; from ood_explain.experiments import RunConfig; "
            f"experiments.run_experiment(RunConfig(dataset='digits', method='simclr', preset='smoke', device='cpu', "
            f"out={str(out)!r}, seed=int(sys.argv[1]), epochs=6, test_limit=40, train_eval_limit=40), progress=False)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-c", code, "0"], env=env, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, "-c", code, "1"], env=env, stderr=subprocess.PIPE, text=True)
    errors = [p.communicate(timeout=300)[1] for p in (first, second)]
    codes = [first.returncode, second.returncode]
    assert sorted(codes)[0] == 0 and codes != [0, 0]  # exactly one run wins
    loser = errors[codes.index(max(codes))]
    assert "in use by PID" in loser or "cannot resume" in loser
    winner_seed = codes.index(0)
    record = json.loads((out / "config.json").read_text())["run"]
    assert record["seed"] == winner_seed and experiments.is_finished(out)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 6
    assert not (out / "checkpoint.pt.tmp").exists()


@pytest.mark.slow
def test_run_load_round_trip(finished):
    run = experiments.Run.load(finished)
    assert run.config == experiments.resolve(dataclasses.replace(tiny(finished)))
    assert run.model.training is False and len(run.split()[0]) == 40
    with pytest.raises(FileNotFoundError, match="not a finished run folder"):
        experiments.Run.load(finished.parent / "nothing")


# ------------------------------------------------------------------------- checked before any training


@pytest.mark.slow
def test_a_class_without_test_images_is_refused_before_training(tmp_path, monkeypatch):
    from ood_explain import data

    real_load = data.load_dataset

    def no_test_images_of_class_0(name, split, *args, **kwargs):
        images = real_load(name, split, *args, **kwargs)
        return images.subset(images.labels != 0) if split == "test" else images

    monkeypatch.setattr(data, "load_dataset", no_test_images_of_class_0)
    trained = []
    monkeypatch.setattr(experiments, "train", lambda *args, **kwargs: trained.append(1))
    with pytest.raises(ValueError, match="digits class 0 .*no ID test images"):
        experiments.run_experiment(tiny(tmp_path / "run"), progress=False)
    assert not trained and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_settings_a_method_ignores_are_not_recorded(tmp_path):
    run = experiments.run_experiment(tiny(tmp_path / "run", oe="photos", oe_shots=3), progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run.config.oe is None and recorded["run"]["oe"] is None and recorded["run"]["oe_shots"] is None
    assert recorded["data"]["oe"] is None


def test_too_few_training_images_name_the_real_problem(tmp_path):
    import torch

    from ood_explain import models

    one_image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    config = train_module.TrainConfig(method="simclr", epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="1 ID training image.*at least 2") as error:
        train_module.train(models.build_model("small-cnn", 1), one_image, config, progress=False)
    assert "lower the batch size" not in str(error.value)
    with pytest.raises(ValueError, match="lower the batch size \\(--batch-size 3 or less\\)"):
        train_module.train(models.build_model("small-cnn", 1), torch.zeros(3, 1, 28, 28, dtype=torch.uint8),
                           train_module.TrainConfig(method="simclr", epochs=1, batch_size=8), progress=False)


def test_a_nan_loss_before_any_checkpoint_does_not_name_one(tmp_path):
    import torch

    from ood_explain import models

    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    config = train_module.TrainConfig(method="simclr", epochs=1, batch_size=8, lr=1e30, log_every=1)
    with pytest.raises(train_module.NonFiniteLossError, match="no checkpoint was written"):
        train_module.train(models.build_model("small-cnn", 1), images, config, checkpoint=tmp_path / "c.pt",
                           progress=False)
    assert not (tmp_path / "c.pt").exists()


def test_reproduce_refuses_a_class_the_dataset_lacks_before_training(tmp_path, data_root):
    from ood_explain import reproduce

    with pytest.raises(ValueError, match="--classes 12: fashion-mnist has classes 0..9"):
        reproduce.reproduce("fashion-mnist-one-vs-rest", preset="smoke", out=tmp_path, data_root=str(data_root),
                            classes=[0, 12], progress=False)
    with pytest.raises(ValueError, match="unknown method 'csi'"):
        reproduce.reproduce("fashion-mnist-one-vs-rest", preset="smoke", out=tmp_path, data_root=str(data_root),
                            classes=[0], methods=["simclr", "csi"], progress=False)
    assert not list(tmp_path.glob("*/class-*"))

