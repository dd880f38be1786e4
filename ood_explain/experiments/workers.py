"""Runs side by side in worker processes that live for a whole sweep (or a whole notebook kernel).

One worker per slot (a set of environment variables, e.g. ``OMP_NUM_THREADS=1`` or ``CUDA_VISIBLE_DEVICES``)
imports torch and the package once and then trains one run after the other: importing them takes seconds
on a small CPU, as long as a quickstart run's training. The parent sends a task as one JSON line on the
worker's stdin; the worker points its stdout and stderr at the run's log for the time of the run and answers
``done`` or ``failed`` on its own channel. A worker that dies (a crash, ``os._exit``, the memory killer)
fails only its current run; the next run gets a fresh worker. Every run seeds its own generators, so a run's
numbers do not depend on which worker ran it or after what (tests/test_side_by_side.py). A :class:`Pool`
starts the longest jobs first, so that the workers finish together.

``python -m ood_explain.experiments.workers`` is the worker; each task names its target ``MODULE:FUNCTION``,
and FUNCTION(config, restart) trains one :class:`~ood_explain.experiments.runs.RunConfig` (or, for a notebook's
BatchNorm trace, retrains it).
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


def worker_command() -> list[str]:
    """``python -m ood_explain.experiments.workers``: one worker process (each task names its target)."""
    return [sys.executable, "-m", "ood_explain.experiments.workers"]


@dataclass(frozen=True)
class Job:
    """One task for a worker: train `config` with `target` (``MODULE:FUNCTION``, FUNCTION(config, restart))."""

    config: RunConfig
    target: str = TRAIN_ONE
    restart: bool = False
    what: str = ""  # how a line names a job that is not the run itself, e.g. "BatchNorm trace"

    @property
    def key(self) -> tuple[str, str]:
        """What names a job: its target and run folder (the same job submitted twice is one job)."""
        return self.target, str(Path(self.config.out))


def task_line(config: RunConfig, restart: bool = False, target: str = TRAIN_ONE) -> bytes:
    """One task for a worker: the whole config (every field, not a subset of flags), restart, the target and
    the log's path."""
    task = {"config": dataclasses.asdict(config), "restart": restart, "target": target, "log": str(log_path(config))}
    return (json.dumps(task) + "\n").encode()


def expected_cost(config: RunConfig) -> float:
    """A rough relative amount of training work (epochs x rows per ID image x ID classes), only to start the
    longest runs first so that the workers finish together. Rows: two views per instance, instances per image
    (self-OECL's rotations), doubled by OE rows (external OE or self-OECL's own)."""
    method = methods.get(config.method)
    rows = 2 * method.rows_per_image * (2 if method.external_oe or method.oe_norm_term else 1)
    classes = 9 if config.protocol == "leave-one-out" else 1  # a ten-class dataset without its held-out class
    return (config.epochs or 1) * rows * classes


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
    """The parent's handle on one worker process: send a job, then poll until it answers or dies."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.process = subprocess.Popen(
            worker_command(),
            env={**os.environ, **environment},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        self.answer = b""
        self.job: Job | None = None

    def send(self, job: Job) -> None:
        assert self.process.stdin is not None
        log = log_path(job.config)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")  # a worker that dies before writing still leaves an empty, current log
        self.job = job
        self.process.stdin.write(task_line(job.config, job.restart, job.target))
        self.process.stdin.flush()

    def outcome(self) -> str | None:
        """None while the job goes on; "" when it finished well; else the reason it failed."""
        assert self.process.stdout is not None and self.job is not None
        self.answer += self.process.stdout.read() or b""
        log = log_path(self.job.config)
        if b"\n" not in self.answer:
            if self.process.poll() is None:
                return None
            return last_line(log) or f"the worker ended with exit code {self.process.returncode}"
        line, self.answer = self.answer.split(b"\n", 1)
        return "" if line.decode() == DONE else (last_line(log) or "failed without a message")

    def stop(self, wait: float = 10) -> None:
        """Close its input (an idle worker ends); terminate it if it still runs, kill it after `wait` s."""
        if self.process.poll() is None and self.job is not None:
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


def done_line(job: Job, reason: str) -> str:
    """``    simclr class 0 seed 0: done`` (or FAILED; a job that is not the run names itself in brackets)."""
    config, what = job.config, f" ({job.what})" if job.what else ""
    outcome = "done" if not reason else "FAILED"
    return f"{config.method:>10} class {config.normal_class} seed {config.seed}{what}: {outcome}"


class Pool:
    """Workers for `slots` (one environment each, e.g. ``OMP_NUM_THREADS=1``) and a queue of jobs: the longest
    first (:func:`expected_cost`), or those a caller waits for (:meth:`promote`). Not thread-safe: one caller
    at a time. :meth:`poll` starts pending jobs on free slots and returns the ones that ended."""

    def __init__(self, slots: list[dict[str, str]]) -> None:
        self.slots = slots
        self.workers: dict[int, Worker] = {}
        self.pending: list[Job] = []
        self.plugins: dict[str, str] = {}

    def running(self) -> list[Job]:
        return [worker.job for worker in self.workers.values() if worker.job is not None]

    def has(self, key: tuple[str, str]) -> bool:
        """Whether the job named `key` is waiting or running."""
        return any(job.key == key for job in [*self.pending, *self.running()])

    def submit(self, jobs: Iterable[Job]) -> list[Job]:
        """Queue the jobs not already queued or running, longest first among themselves; returns those queued.
        A method registered only in this process is a ValueError before anything is queued."""
        new = [job for job in jobs if not self.has(job.key)]
        new = list({job.key: job for job in new}.values())
        if new:
            self.plugins = {**self.plugins, **plugin_environment([job.config for job in new])}
        self.pending += sorted(new, key=lambda job: -expected_cost(job.config))  # a stable sort: ties keep order
        return new

    def promote(self, keys: Iterable[tuple[str, str]]) -> None:
        """Move the pending jobs named by `keys` to the front of the queue (in their queued order)."""
        wanted = set(keys)
        self.pending.sort(key=lambda job: job.key not in wanted)

    def poll(self) -> list[tuple[Job, str]]:
        """Start pending jobs on idle slots, then collect the ended ones: (job, "" or the reason it failed). A
        worker that died with its job is replaced by a fresh one at the next start; so is an idle worker whose
        environment lacks a plugin module submitted since."""
        for slot, environment in enumerate(self.slots):
            worker = self.workers.get(slot)
            if not self.pending or (worker is not None and worker.job is not None):
                continue
            wanted = {**environment, **self.plugins}
            if worker is not None and worker.environment != wanted:
                worker.stop()
                worker = None
            if worker is None:
                worker = self.workers[slot] = Worker(wanted)
            worker.send(self.pending.pop(0))
        ended = []
        for slot, worker in list(self.workers.items()):
            if worker.job is None or (reason := worker.outcome()) is None:
                continue
            ended.append((worker.job, reason))
            worker.job = None
            if worker.process.poll() is not None:  # it died with its job: the slot gets a fresh one
                worker.stop()
                del self.workers[slot]
        return ended

    def busy(self) -> bool:
        return bool(self.pending or self.running())

    def cancel(self) -> list[Job]:
        """Drop the queue and stop every worker (a running job keeps its last checkpoint); returns the jobs
        that were queued or running."""
        dropped = [*self.pending, *self.running()]
        self.pending = []
        self.close()
        return dropped

    def close(self) -> None:
        """Stop every worker: an idle one ends on closed input, a busy one is terminated."""
        for worker in self.workers.values():
            worker.stop()
        self.workers = {}


def run_in_subprocesses(
    configs: list[RunConfig], slots: list[dict[str, str]], restart: bool = False, target: str = TRAIN_ONE
) -> None:
    """Train `configs` in one worker per slot, each taking the next pending run (the longest first) when it is
    free; each run writes ``OUT.log``. Failed runs are one :class:`RunsFailed` naming each folder, the last line
    of its log (the reason) and the log. An interrupt (Ctrl-C, or Kernel > Interrupt, which reaches only this
    process) stops the workers before it propagates; their checkpoints keep the last finished epoch. A worker
    imports only ood_explain (and ``$OOD_EXPLAIN_PLUGINS``), so a method registered in this process alone is
    unknown to it."""
    pool = Pool(slots)
    pool.submit(Job(config, target, restart) for config in configs)
    failures = []
    try:
        while pool.busy():
            for job, reason in pool.poll():
                print(done_line(job, reason), flush=True)
                if reason:
                    failures.append(f"{job.config.out}: {reason} (log: {log_path(job.config)})")
            time.sleep(0.2)
    finally:
        pool.close()
    if failures:
        raise RunsFailed("runs failed: " + "; ".join(failures))


# --------------------------------------------------------------------------------------------- the worker


def _target(spec: str) -> Callable[[RunConfig, bool], object]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def _die_with_parent() -> None:
    """Linux: ask for SIGTERM when the parent (the thread that started this worker) ends, so a worker never
    trains on for a kernel that was restarted or killed; elsewhere a worker ends at its next end of input."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve() -> None:
    """The worker's loop: for each task line on stdin, point stdout and stderr at the run's log, run its target,
    answer ``done`` or ``failed`` (the traceback is in the log) on the original stdout; end at end of input."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent ended before the request took effect
        return
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
                _target(task["target"])(RunConfig(**task["config"]), task["restart"])
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
    serve()
