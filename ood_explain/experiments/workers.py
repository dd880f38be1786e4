"""Runs side by side in worker processes that live for a whole sweep.

One worker per slot (a set of environment variables, e.g. ``OMP_NUM_THREADS=1`` or ``CUDA_VISIBLE_DEVICES``)
imports torch and the package once and then trains one run after the other: importing them takes seconds
on a small CPU, as long as a quickstart run's training. The parent sends a task as one JSON line on the
worker's stdin; the worker points its stdout and stderr at the run's log for the time of the run and answers
``done`` or ``failed`` on its own channel. A worker that dies (a crash, ``os._exit``, the memory killer)
fails only its current run; the next run gets a fresh worker. Every run seeds its own generators, so a run's
numbers do not depend on which worker ran it or after what (tests/test_side_by_side.py).

``python -m ood_explain.experiments.workers MODULE:FUNCTION`` is the worker; FUNCTION(config, restart) trains
one :class:`~ood_explain.experiments.runs.RunConfig`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ood_explain.core import methods
from ood_explain.experiments.runs import RunConfig

TRAIN_ONE = "ood_explain.experiments.sweeps:train_one"
DONE, FAILED = "done", "failed"


class RunsFailed(RuntimeError):
    """One or more runs of a sweep ended with an error; the message names their folders and logs."""


def log_path(config: RunConfig) -> Path:
    """Where a run's worker output goes: ``OUT.log`` beside the run folder."""
    return Path(config.out).with_suffix(".log")


def worker_command(target: str = TRAIN_ONE) -> list[str]:
    """``python -m ood_explain.experiments.workers TARGET``: one worker process."""
    return [sys.executable, "-m", "ood_explain.experiments.workers", target]


def task_line(config: RunConfig, restart: bool = False) -> bytes:
    """One task for a worker: the whole config (every field, not a subset of flags), restart, the log's path."""
    task = {"config": dataclasses.asdict(config), "restart": restart, "log": str(log_path(config))}
    return (json.dumps(task) + "\n").encode()


def last_line(log: Path) -> str:
    """The last non-empty line of a log (a traceback's last line names the error), at most 300 characters."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def plugin_environment(configs: list[RunConfig]) -> dict[str, str]:
    """``$OOD_EXPLAIN_PLUGINS`` for workers that run `configs`: the modules of their plugin methods added.
    A method registered in ``__main__`` (a notebook cell, a script) cannot reach a worker: ValueError."""
    sources = {methods.get(c.method).source for c in configs} - {methods.BUILT_IN}
    if "__main__" in sources:
        names = sorted({c.method for c in configs if methods.get(c.method).source == "__main__"})
        raise ValueError(
            f"method(s) {', '.join(names)} were registered in this process only (__main__), so the "
            "subprocesses cannot import them: define them in a module and name it (--plugin MODULE or "
            f"${methods.PLUGINS_VARIABLE}), or run without --jobs"
        )
    if not sources:
        return {}
    known = methods.plugin_modules()
    return {methods.PLUGINS_VARIABLE: ",".join(known + sorted(sources - set(known)))}


class Worker:
    """The parent's handle on one worker process: send a run, then poll until it answers or dies."""

    def __init__(self, target: str, environment: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            worker_command(target),
            env={**os.environ, **environment},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        self.answer = b""
        self.config: RunConfig | None = None

    def send(self, config: RunConfig, restart: bool) -> None:
        assert self.process.stdin is not None
        log_path(config).parent.mkdir(parents=True, exist_ok=True)
        log_path(config).write_text("")  # a worker that dies before writing still leaves an empty, current log
        self.config = config
        self.process.stdin.write(task_line(config, restart))
        self.process.stdin.flush()

    def outcome(self) -> str | None:
        """None while the run goes on; "" when it finished well; else the reason it failed."""
        assert self.process.stdout is not None and self.config is not None
        self.answer += self.process.stdout.read() or b""
        if b"\n" not in self.answer:
            if self.process.poll() is None:
                return None
            return last_line(log_path(self.config)) or f"the worker ended with exit code {self.process.returncode}"
        line, self.answer = self.answer.split(b"\n", 1)
        return "" if line.decode() == DONE else (last_line(log_path(self.config)) or "failed without a message")

    def stop(self, wait: float = 10) -> None:
        """Close its input (an idle worker ends); terminate it if it still runs, kill it after `wait` s."""
        if self.process.poll() is None and self.config is not None:
            self.process.terminate()
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def run_in_subprocesses(
    configs: list[RunConfig], slots: list[dict[str, str]], restart: bool = False, target: str = TRAIN_ONE
) -> None:
    """Train `configs` in one worker per slot, each taking the next pending run when it is free; each run
    writes ``OUT.log``. Failed runs are one :class:`RunsFailed` naming each folder, the last line of its log
    (the reason) and the log. An interrupt (Ctrl-C, or Kernel > Interrupt, which reaches only this process)
    stops the workers before it propagates; their checkpoints keep the last finished epoch. A worker imports
    only ood_explain (and ``$OOD_EXPLAIN_PLUGINS``), so a method registered in this process alone is unknown
    to it."""
    slots = [{**slot, **plugin_environment(configs)} for slot in slots]
    workers: dict[int, Worker] = {}
    pending, failures = list(configs), []
    try:
        while pending or any(worker.config is not None for worker in workers.values()):
            for slot, environment in enumerate(slots):
                worker = workers.get(slot)
                if pending and (worker is None or worker.config is None):
                    if worker is None:
                        worker = workers[slot] = Worker(target, environment)
                    worker.send(pending.pop(0), restart)
            for slot, worker in list(workers.items()):
                if worker.config is None or (reason := worker.outcome()) is None:
                    continue
                config, worker.config = worker.config, None
                print(
                    f"{config.method:>10} class {config.normal_class} seed {config.seed}: "
                    f"{'done' if not reason else 'FAILED'}",
                    flush=True,
                )
                if reason:
                    failures.append(f"{config.out}: {reason} (log: {log_path(config)})")
                if worker.process.poll() is not None:  # it died with its run: the slot gets a fresh one
                    worker.stop()
                    del workers[slot]
            time.sleep(0.2)
    finally:
        for worker in workers.values():  # an idle worker ends on closed input; a busy one only on an interrupt
            worker.stop()
    if failures:
        raise RunsFailed("runs failed: " + "; ".join(failures))


# --------------------------------------------------------------------------------------------- the worker


def _target(spec: str) -> Callable[[RunConfig, bool], object]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def serve(target: str) -> None:
    """The worker's loop: for each task line on stdin, point stdout and stderr at the run's log, train it,
    answer ``done`` or ``failed`` (the traceback is in the log) on the original stdout; end at end of input."""
    answers = os.fdopen(os.dup(1), "w")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    for line in sys.stdin:
        task = json.loads(line)
        with open(task["log"], "w") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                _target(target)(RunConfig(**task["config"]), task["restart"])
                answer = DONE
            except (Exception, SystemExit):
                traceback.print_exc()
                answer = FAILED
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
        answers.write(answer + "\n")
        answers.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
