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

from ood_explain import experiments
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


def test_a_different_oe_source_is_refused(tmp_path):
    out = tmp_path / "oecl"
    experiments.run_experiment(tiny(out, method="oecl", oe="photos"), progress=False)
    before = snapshot(out)
    with pytest.raises(ValueError, match="oe: 'photos' in the checkpoint, 'outlier-classes' now"):
        experiments.run_experiment(tiny(out, method="oecl", oe="outlier-classes"), progress=False)
    assert snapshot(out) == before


def test_evaluation_settings_may_change_on_a_finished_folder(finished):
    run = experiments.run_experiment(tiny(finished, test_limit=20), progress=False)
    assert len(run.scores) == 40  # 20 ID + 20 OOD, rescored with the same model
    assert json.loads((finished / "config.json").read_text())["run"]["test_limit"] == 20
    experiments.run_experiment(tiny(finished), progress=False)  # back to the module's settings


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


def test_metrics_json_is_written_last(tmp_path, monkeypatch):
    order = []
    real_write_text = type(tmp_path).write_text

    def recording_write_text(self, *args, **kwargs):
        order.append(self.name)
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "write_text", recording_write_text)
    experiments.run_experiment(tiny(tmp_path / "run"), progress=False)
    assert order[-1] == "metrics.json" and order[0] == "config.json"


def test_a_folder_in_use_by_a_live_process_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(experiments.RunFolderInUse, match=f"in use by PID {sleeper.pid}"):
            experiments.run_experiment(tiny(out), progress=False)
        assert not (out / "config.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    run = experiments.run_experiment(tiny(out), progress=False)  # a stale lock (dead process) is taken over
    assert experiments.is_finished(out) and not (out / ".lock").exists() and run.metrics["epochs"] == 2


def test_two_concurrent_runs_into_one_folder(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from ood_explain import experiments; from ood_explain.experiments import RunConfig; "
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


def test_run_load_round_trip(finished):
    run = experiments.Run.load(finished)
    assert run.config == experiments.resolve(dataclasses.replace(tiny(finished)))
    assert run.model.training is False and len(run.split()[0]) == 40
    with pytest.raises(FileNotFoundError, match="not a finished run folder"):
        experiments.Run.load(finished.parent / "nothing")
