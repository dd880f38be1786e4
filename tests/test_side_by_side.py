"""The notebooks train their missing runs side by side in subprocesses: the numbers are those of training
them one after the other in the kernel, and an interrupt stops the subprocesses."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import torch

from ood_explain import notebook, sweeps
from ood_explain.experiments import workers
from ood_explain.teaching import background, diagnostics


def smoke_configs(root) -> list:
    return [notebook.config("simclr", 0, preset="smoke", root=root),
            notebook.config("oecl", 1, preset="smoke", oe="photos", root=root)]


def three_configs(root) -> list:  # two workers for three runs: one worker trains two, one after the other
    return [*smoke_configs(root), notebook.config("self-oecl", 3, preset="smoke", root=root)]


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

    monkeypatch.setattr(background.Background, "wait", interrupted)
    monkeypatch.setattr(background.Pool, "poll", lambda self: [])  # nothing starts: only the waiting is tested
    with pytest.raises(notebook.Interrupted, match="interrupted; run the cell again to resume") as caught:
        notebook.load_or_run_all(smoke_configs(tmp_path))
    assert caught.value._render_traceback_() == [notebook.INTERRUPTED]
    notebook.background().cancel()


SLEEPY_WORKER = """
import time

def nap(config, restart):
    time.sleep(60)
"""


def test_an_interrupt_while_waiting_stops_the_background_workers(tmp_path, monkeypatch):
    (tmp_path / "sleepy.py").write_text(SLEEPY_WORKER)
    pool = background.Background([{"PYTHONPATH": str(tmp_path)}])
    job = workers.Job(notebook.config("simclr", 0, preset="smoke", root=tmp_path), "sleepy:nap")
    pool.submit([job])
    while not pool.pool.running():  # the thread starts it
        time.sleep(0.05)
    process = next(iter(pool.pool.workers.values())).process
    real_wait = pool.changed.wait

    def interrupt_the_main_thread(*args, **kwargs):  # Kernel > Interrupt reaches the main thread only
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(pool.changed, "wait", interrupt_the_main_thread)
    with pytest.raises(KeyboardInterrupt):
        pool.wait([job])
    assert process.poll() is not None and not pool.has(job) and pool.idle()


def test_the_pool_starts_the_longest_jobs_first_and_a_waited_job_goes_first(tmp_path):
    simclr, oecl = smoke_configs(tmp_path)
    self_oecl = notebook.config("self-oecl", 3, preset="smoke", root=tmp_path)
    loco = notebook.config("oecl", 0, preset="smoke", oe="photos", protocol="leave-one-out", root=tmp_path)
    pool = workers.Pool([{}])  # nothing starts before poll()
    queued = pool.submit(workers.Job(c) for c in (simclr, oecl, self_oecl, loco, simclr))
    assert len(queued) == 4  # the same job twice is one job
    assert [job.config for job in pool.pending] == [loco, self_oecl, oecl, simclr]
    assert pool.submit([workers.Job(oecl)]) == []  # already queued
    pool.promote([workers.Job(simclr).key, workers.Job(oecl).key])
    assert [job.config for job in pool.pending] == [oecl, simclr, loco, self_oecl]


@pytest.mark.slow
def test_side_by_side_and_in_the_background_give_the_numbers_of_one_after_the_other(tmp_path, monkeypatch, capsys):
    """Three runs and a BatchNorm trace: trained one after the other in this process, then in two workers (the
    trace and one run started in the background, the two other runs queued by load_or_run_all)."""
    torch.set_num_threads(1)
    serial = [notebook.load_or_run(c, progress=False, verbose=False) for c in three_configs(tmp_path / "serial")]
    serial_trace = diagnostics.batchnorm_trace(serial[0].config, notebook.tracked_epochs(serial[0].config.epochs))
    monkeypatch.setenv("OOD_EXPLAIN_JOBS", "2")
    configs = three_configs(tmp_path / "parallel")
    diagnostics.trace_in_background(configs[0])
    notebook.train_in_background(configs[:1])
    assert notebook.background().has(notebook.job_of(configs[0]))  # queued or running already
    said = capsys.readouterr().out
    assert "started the BatchNorm trace of simclr, class 0 in the background (2 side by side" in said
    assert "started 1 run(s) in the background" in said
    parallel = notebook.load_or_run_all(configs)
    said = capsys.readouterr().out
    assert "training 2 runs, 2 side by side (1 torch thread(s) each" in said and "waiting for 3 job(s)" in said
    for one, other in zip(serial, parallel):
        assert not other.trained_now  # trained by a worker, loaded here
        for name in ("scores.csv", "epoch_scores.csv"):
            pd.testing.assert_frame_equal(pd.read_csv(one.path / name), pd.read_csv(other.path / name))
        assert one.metrics["scores"] == other.metrics["scores"]
    trace = diagnostics.batchnorm_trace(configs[0], notebook.tracked_epochs(configs[0].epochs))  # made by a worker
    pd.testing.assert_frame_equal(trace, serial_trace)
    said = capsys.readouterr().out  # "waiting for 1 job(s)" unless the trace had finished before
    assert "waiting" not in said or "simclr class 0 seed 0 (BatchNorm trace): done" in said
    assert not notebook.background().pool.workers  # the queue is empty: no worker holds memory
    again = notebook.load_or_run_all(configs)  # all finished: nothing trains, nothing waits
    said = capsys.readouterr().out
    assert "training" not in said and "waiting" not in said and [r.auroc() for r in again] == [r.auroc() for r in parallel]
    notebook.train_in_background(configs)
    assert notebook.background().idle() and "all 3 run(s) are finished" in capsys.readouterr().out
