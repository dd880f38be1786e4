"""The notebooks train their missing runs side by side in subprocesses: the numbers are those of training
them one after the other in the kernel, and an interrupt stops the subprocesses."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pandas as pd
import pytest
import torch

from ood_explain import notebook, sweeps
from ood_explain.experiments import workers


def smoke_configs(root) -> list:
    return [notebook.config("simclr", 0, preset="smoke", root=root),
            notebook.config("oecl", 1, preset="smoke", oe="photos", root=root)]


def three_configs(root) -> list:  # two workers for three runs: one worker trains two, one after the other
    return [*smoke_configs(root), notebook.config("self-oecl", 3, preset="smoke", root=root)]


@pytest.mark.slow
def test_side_by_side_gives_the_numbers_of_one_after_the_other(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    serial = [notebook.load_or_run(c, progress=False, verbose=False) for c in three_configs(tmp_path / "serial")]
    monkeypatch.setenv("OOD_EXPLAIN_JOBS", "2")
    parallel = notebook.load_or_run_all(three_configs(tmp_path / "parallel"))
    assert "training 3 runs, 2 side by side (1 torch thread(s) each" in capsys.readouterr().out
    for one, other in zip(serial, parallel):
        assert not other.trained_now  # trained by a subprocess, loaded here
        for name in ("scores.csv", "epoch_scores.csv"):
            pd.testing.assert_frame_equal(pd.read_csv(one.path / name), pd.read_csv(other.path / name))
        assert one.metrics["scores"] == other.metrics["scores"]
    again = notebook.load_or_run_all(three_configs(tmp_path / "parallel"))  # all finished: nothing trains
    assert "training" not in capsys.readouterr().out and [r.auroc() for r in again] == [r.auroc() for r in parallel]


def test_how_many_side_by_side(monkeypatch, tmp_path):
    configs = smoke_configs(tmp_path) * 3
    monkeypatch.setenv("OOD_EXPLAIN_JOBS", "4")
    assert notebook.side_by_side(configs) == 4
    assert notebook.side_by_side(configs[:2]) == 2  # never more than runs
    monkeypatch.setenv("OOD_EXPLAIN_JOBS", "two")
    with pytest.raises(ValueError, match="OOD_EXPLAIN_JOBS must be a whole number"):
        notebook.side_by_side(configs)
    monkeypatch.delenv("OOD_EXPLAIN_JOBS")
    monkeypatch.setattr(notebook, "usable_cores", lambda: 8)
    assert notebook.side_by_side(configs, threads=2) == 4  # cores / the kernel's threads
    cuda = [dataclasses.replace(c, device="cuda") for c in configs]
    monkeypatch.setattr(notebook, "pick_device", lambda device: torch.device(device if device != "auto" else "cpu"))
    assert notebook.side_by_side(cuda) == 1


def test_an_interrupt_stops_the_running_subprocesses(tmp_path, monkeypatch):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        process = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        started.append(process)
        return process

    real_sleep, calls = workers.time.sleep, []

    def interrupt(seconds):  # the first wait of the loop is interrupted (Popen.wait sleeps too: later calls sleep)
        calls.append(seconds)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(workers.subprocess, "Popen", popen)
    monkeypatch.setattr(workers.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_in_subprocesses(smoke_configs(tmp_path), [{}, {}])
    assert len(started) == 2 and all(process.poll() is not None for process in started)


def test_kernel_interrupt_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_JOBS", "2")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workers, "run_in_subprocesses", interrupted)
    with pytest.raises(notebook.Interrupted, match="interrupted; run the cell again to resume") as caught:
        notebook.load_or_run_all(smoke_configs(tmp_path))
    assert caught.value._render_traceback_() == [notebook.INTERRUPTED]
