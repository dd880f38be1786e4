"""A notebook kernel's background training: one :class:`~ood_explain.experiments.workers.Pool` of workers fed
by one daemon thread, so a notebook can start all its runs early
(:func:`ood_explain.teaching.notebook.train_in_background`) and each cell waits only for the runs it needs
(which move to the front of the queue).

The thread only starts and collects jobs; it never prints (a kernel would show its lines under whichever cell
runs at that moment): the cell that waits prints what it waited for. The workers are the thread's children,
so they end with the kernel (Linux) and a restarted kernel never finds a folder still being written; they
also end whenever the queue is empty, so an idle kernel holds no worker's memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from ood_explain.experiments.workers import Job, Pool, RunsFailed, done_line, log_path


class Background:
    """The pool, its thread and the outcome of every job it ended ("" or the reason it failed)."""

    def __init__(self, slots: list[dict[str, str]]) -> None:
        self.pool = Pool(slots)
        self.outcomes: dict[tuple[str, str], str] = {}
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._serve, name="ood-explain background", daemon=True)
        self.thread.start()

    @property
    def slots(self) -> int:
        """How many jobs run at once."""
        return len(self.pool.slots)

    def _serve(self) -> None:
        while True:
            with self.changed:
                while not self.pool.busy():
                    self.changed.wait()
                try:
                    ended = self.pool.poll()
                except Exception as error:  # e.g. no worker could start: every waiting cell gets the error
                    self.error = error
                    self.pool.cancel()
                    ended = []
                for job, reason in ended:
                    self.outcomes[job.key] = reason
                if not self.pool.busy():
                    self.pool.close()  # an empty queue: the workers end (each holds torch and its data)
                self.changed.notify_all()
            time.sleep(0.2)

    def submit(self, jobs: Iterable[Job]) -> list[Job]:
        """Queue the jobs that are not queued or running already; returns the ones queued now."""
        with self.changed:
            self.error = None
            new = self.pool.submit(jobs)
            for job in new:
                self.outcomes.pop(job.key, None)
            self.changed.notify_all()
            return new

    def has(self, job: Job) -> bool:
        """Whether `job` is queued or running."""
        with self.changed:
            return self.pool.has(job.key)

    def wait(self, jobs: list[Job], verbose: bool = True) -> None:
        """Wait until none of `jobs` is queued or running (those still queued go first), printing a line as each
        ends. Their failures are one :class:`RunsFailed`; an interrupt stops every job (checkpoints stay) and
        propagates."""
        keys = {job.key for job in jobs}
        reported: set[tuple[str, str]] = set()
        try:
            with self.changed:
                self.pool.promote(keys)
                while True:
                    for job in jobs:
                        if job.key in self.outcomes and job.key not in reported and not self.pool.has(job.key):
                            reported.add(job.key)
                            if verbose:
                                print(done_line(job, self.outcomes[job.key]), flush=True)
                    if self.error is not None or not any(self.pool.has(key) for key in keys):
                        break
                    self.changed.wait(timeout=1)
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self.error is not None:
            raise self.error
        failures = [
            f"{job.config.out}: {self.outcomes[job.key]} (log: {log_path(job.config)})"
            for job in jobs
            if self.outcomes.get(job.key)
        ]
        if failures:
            raise RunsFailed("runs failed: " + "; ".join(failures))

    def idle(self) -> bool:
        """Nothing queued or running."""
        with self.changed:
            return not self.pool.busy()

    def cancel(self) -> None:
        """Drop every queued job and stop the running ones (they resume from their checkpoints next time)."""
        with self.changed:
            self.pool.cancel()
            self.changed.notify_all()
