"""Grade one submission in this process: confine it, run the student's notebook in a fresh kernel, then
run the package's own checks on what the student defined. Started by :mod:`.grading` as
``python .../classroom/worker.py`` (a script: importing the package would load torch here for nothing,
seconds per notebook) with a JSON job on stdin; prints one JSON line.

The student's code cells run in order, each with a time limit (a cell that runs over is interrupted and
the next one runs). A kernel that dies (``os._exit``, a segfault, the CPU limit), or that does not
answer after a cell's time limit (the cell ignores interrupts), is restarted and the notebook re-run
without that cell, so the other tasks are still graded. The grading cell comes last: it
reloads :mod:`ood_explain.teaching.exercises` from disk (whatever the student patched) and prints the
results after a random marker that the student's code never saw.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MAX_RESTARTS = 3
MAX_TEXT = 2000
PROBE_SECONDS = 5
TIMEOUT_ERRORS = ("CellTimeout", "KeyboardInterrupt")  # nothing but the time limit interrupts the kernel
HUNG = "it ignored the interrupt after its time limit"


def grading_cell(marker: str, tasks: list[dict[str, str]]) -> str:
    plan = [(task["grade_id"], task["function"], task["check"]) for task in tasks]
    return (
        "import importlib as _gr_importlib, json as _gr_json\n"
        "_gr_exercises = _gr_importlib.reload(_gr_importlib.import_module('ood_explain.teaching.exercises'))\n"
        "_gr_found = {}\n"
        f"for _gr_id, _gr_name, _gr_check in {plan!r}:\n"
        "    if _gr_name not in globals():\n"
        "        _gr_found[_gr_id] = {'defined': False}\n"
        "        continue\n"
        "    _gr_result = getattr(_gr_exercises, _gr_check)(globals()[_gr_name])\n"
        "    _gr_found[_gr_id] = {'defined': True, 'passed': bool(_gr_result.passed), 'text': _gr_result.text,\n"
        "                         'mistake': _gr_result.mistake_id}\n"
        f"print({marker!r} + _gr_json.dumps(_gr_found))\n"
    )


def _environment(workdir: Path) -> None:
    """Every cache and runtime folder inside `workdir`, the only place the kernel may write."""
    for name in ("tmp", "runtime", "ipython", "cache", "mpl"):
        (workdir / ".grading" / name).mkdir(parents=True, exist_ok=True)
    home = workdir / ".grading"
    os.environ.update(
        HOME=str(home),
        TMPDIR=str(home / "tmp"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        XDG_CACHE_HOME=str(home / "cache"),
        MPLCONFIGDIR=str(home / "mpl"),
        OOD_EXPLAIN_CACHE=str(home / "cache"),
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OOD_EXPLAIN_STATIC_FIGURES="0",  # no browser for figures, no downloads: grading runs offline and alone
        OOD_EXPLAIN_DOWNLOAD="0",
    )
    os.environ.pop("JPY_SESSION_NAME", None)


def _short(text: object) -> str:
    text = str(text)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"


def _exit_code(client: Any) -> int | None:
    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    return process.poll() if process is not None else None


def _run(cells: list[dict[str, Any]], job: dict[str, Any], marker: str) -> tuple[list[dict[str, Any]], int | None, str]:
    """Execute `cells` (code cells with ``source``); returns their outputs, the index of the cell that
    killed the kernel or hung it past its time limit (None: none did) and what happened."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c["source"]) for c in cells])
    notebook.cells.append(nbformat.v4.new_code_cell(grading_cell(marker, job["tasks"])))
    timeout = job["cell_timeout"]
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": f"the cell ran longer than {timeout} s", "traceback": []},
        resources={"metadata": {"path": job["workdir"]}},
        startup_timeout=120,
    )
    died_at, reason = None, ""
    # The kernel's own stdout and stderr go nowhere: this process's stdout carries only its result line.
    with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        for index, cell in enumerate(notebook.cells):
            try:
                _execute(client, cell, index)
                if _timed_out(cell) and _stuck(client):
                    died_at, reason = index, HUNG
                    break
            except DeadKernelError:
                died_at, reason = index, f"the kernel died (exit code {_exit_code(client)})"
                break
    return [dict(cell) for cell in notebook.cells], died_at, reason


def _execute(client: Any, cell: Any, index: int, store_history: bool = True) -> None:
    """Run one cell; one that reached its time limit gets a CellTimeout error output (when the kernel
    ignored the interrupt, nbclient adds none)."""
    start = time.monotonic()
    client.execute_cell(cell, index, store_history=store_history)
    if time.monotonic() - start >= client.timeout and not _timed_out(cell):
        cell.outputs.append(
            {"output_type": "error", "ename": "CellTimeout", "evalue": f"over {client.timeout} s", "traceback": []}
        )


def _timed_out(cell: Any) -> bool:
    return any(o.get("ename") in TIMEOUT_ERRORS for o in cell.get("outputs", []) if o.get("output_type") == "error")


def _stuck(client: Any) -> bool:
    """After an interrupt: does the kernel still not answer a no-op within PROBE_SECONDS?"""
    import nbformat

    probe, timeout = nbformat.v4.new_code_cell("pass"), client.timeout
    client.timeout = PROBE_SECONDS
    client.nb.cells.append(probe)  # nbclient stores each executed cell at its index: give the probe its own
    try:
        _execute(client, probe, len(client.nb.cells) - 1, store_history=False)
    finally:
        client.nb.cells.pop()
        client.timeout = timeout
    return _timed_out(probe)


def _cell_report(cell: dict[str, Any]) -> dict[str, Any]:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if not errors:
        return {}
    return {"ename": errors[-1].get("ename", ""), "evalue": _short(errors[-1].get("evalue", ""))}


def _checks(outputs: list[dict[str, Any]], marker: str) -> dict[str, Any] | None:
    for output in outputs:
        text = output.get("text", "") if output.get("output_type") == "stream" else ""
        for line in str(text).splitlines():
            if line.startswith(marker):
                return json.loads(line[len(marker) :])
    return None


def grade(job: dict[str, Any]) -> dict[str, Any]:
    """Run the job's notebook (``job["cells"]``: the student's code cells with their ``index`` in the
    file) and return the checks' results, each cell's error and the kernel's deaths."""
    start = time.monotonic()
    marker = f"@@grading-{secrets.token_hex(16)}@@"
    cells = list(job["cells"])
    skipped: list[dict[str, Any]] = []
    for _attempt in range(MAX_RESTARTS + 1):
        outputs, died_at, reason = _run(cells, job, marker)
        if died_at is None or died_at >= len(cells):
            break
        skipped.append({"index": cells[died_at]["index"], "reason": reason, "hung": reason == HUNG})
        cells = cells[:died_at] + cells[died_at + 1 :]
    reports = {str(c["index"]): _cell_report(out) for c, out in zip(cells, outputs)}
    errors = {index: report for index, report in reports.items() if report}
    checks = _checks(outputs[len(cells)].get("outputs", []), marker) if died_at is None else None
    return {
        "checks": checks,
        "errors": errors,
        "crashes": skipped,
        "seconds": round(time.monotonic() - start, 2),
    }


def _sandbox_module() -> Any:
    """:mod:`.sandbox`, loaded from its file without importing the package (and torch)."""
    spec = importlib.util.spec_from_file_location("_ood_explain_sandbox", Path(__file__).with_name("sandbox.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main() -> None:
    job = json.loads(sys.stdin.read())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sandbox = _sandbox_module()
    workdir = Path(job["workdir"])
    _environment(workdir)
    note = sandbox.confine(workdir, sandbox.Limits(**job["limits"]), [Path(p) for p in job["protected"]])
    os.chdir(workdir)
    result = grade(job)
    result["sandbox"] = note
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
