"""``ood-explain check-notebooks``: does what the notebooks say hold on this machine?

Executes notebooks 00-05 in lite mode (a fresh kernel each, nbclient) with ``$OOD_EXPLAIN_CLAIMS_LOG`` set,
so every :func:`ood_explain.teaching.claims.your_run` cell appends its verdicts (this run's value against each
quoted range, and each "in k of n seeds" statement), then counts them: ``check.md`` and ``check.json`` in
the output folder, with the executed notebooks beside them. The CPU kernels follow
``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA``; set them to stand in for another processor.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pandas as pd

from ood_explain.teaching.claims import EXPECTED, LOG_VARIABLE, coverage, within

NOTEBOOKS = (
    "00_quickstart",
    "01_contrastive_learning",
    "02_norm_as_ood_score",
    "03_oecl",
    "04_self_oecl",
    "05_leave_one_class_out",
)
KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OOD_EXPLAIN_THREADS")


def notebooks_folder() -> Path:
    return Path(__file__).resolve().parents[2] / "notebooks"


def pick(names: list[str] | None) -> list[str]:
    """Notebook names from prefixes such as ``00`` (default: all of 00-05); unknown ones are refused."""
    if not names:
        return list(NOTEBOOKS)
    chosen = []
    for prefix in names:
        found = [n for n in NOTEBOOKS if n.startswith(prefix)]
        if len(found) != 1:
            raise ValueError(f"--notebooks: {prefix!r} names none of {', '.join(n[:2] for n in NOTEBOOKS)}")
        chosen.append(found[0])
    return chosen


def execute(name: str, out: Path, timeout: int) -> float:
    """Run notebook `name` top to bottom in a fresh kernel (working directory: notebooks/) and save the
    executed copy in `out`; returns its wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source = notebooks_folder() / f"{name}.ipynb"
    notebook = nbformat.read(source, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    )
    try:
        client.execute()
    except CellExecutionError as error:
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        raise ValueError(f"{name}: a cell failed ({first[:200]}); the executed copy is {out / name}.ipynb") from None
    finally:
        nbformat.write(notebook, out / f"{name}.ipynb")
    return time.perf_counter() - started


def check_notebooks(
    out: str | Path, runs: str | Path | None = None, names: list[str] | None = None, timeout: int = 3600
) -> pd.DataFrame:
    """Execute the notebooks (lite mode; runs under `runs`, default ``OUT/runs``) and write check.md and
    check.json into `out`; returns the verdicts (one row per range or statement a notebook checked)."""
    out = Path(out).absolute()
    chosen = pick(names)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "claims-log.jsonl"
    log.unlink(missing_ok=True)
    saved = dict(os.environ)  # the kernels inherit these; the caller's environment is restored afterwards
    os.environ.update(
        {
            "OOD_EXPLAIN_FAST": "0",
            "OOD_EXPLAIN_RUNS": str(Path(runs or out / "runs").absolute()),
            LOG_VARIABLE: str(log),
        }
    )
    seconds = {}
    try:
        for name in chosen:
            print(f"executing {name} ...", flush=True)
            seconds[name] = execute(name, out, timeout)
            print(f"  {seconds[name]:.0f} s", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    (out / "seconds.json").write_text(json.dumps(seconds))
    return report(out)


def report(out: str | Path, results: str | Path = EXPECTED) -> pd.DataFrame:
    """Judge the values an earlier check logged in `out` against the claims files in `results` (the
    committed ones by default: a check run before they were regenerated is judged by the new ranges and
    counts) and write check.md and check.json; returns the verdicts."""
    out = Path(out)
    log = out / "claims-log.jsonl"
    if not log.exists():
        raise ValueError(f"{log} does not exist: run ood-explain check-notebooks --out {out} first")
    logged = pd.DataFrame([json.loads(line) for line in log.read_text().splitlines() if line.strip()])
    verdicts = rejudge(logged, results) if len(logged) else pd.DataFrame()
    seconds_file = out / "seconds.json"
    seconds = json.loads(seconds_file.read_text()) if seconds_file.exists() else {}
    write_report(verdicts, seconds, out)
    return verdicts


def rejudge(verdicts: pd.DataFrame, results: str | Path) -> pd.DataFrame:
    """The logged verdicts with each range and count taken from the claims files in `results`."""
    table = pd.read_csv(Path(results) / "claims.csv", dtype={"notebook": str}).set_index("claim")
    said = pd.read_csv(Path(results) / "statements.csv", dtype={"notebook": str}).set_index("statement")
    rows = []
    for row in verdicts.to_dict("records"):
        if row["kind"] == "range":
            expected = table.loc[row["name"]]
            row |= {"low": float(expected["min"]), "high": float(expected["max"]), "n": int(expected["n"])}
            row["inside"] = within(row["value"], row["low"], row["high"])
        else:
            expected = said.loc[row["name"]]
            row |= {"holds": int(expected["holds"]), "n": int(expected["n"])}
        rows.append(row)
    return pd.DataFrame(rows)


def settings() -> dict[str, str]:
    """The kernel settings of this check (unset ones as '(unset)'), the CPU capability torch's kernels use,
    and the processor."""
    import torch

    return {
        **{name: os.environ.get(name, "(unset)") for name in KERNEL_SETTINGS},
        "torch CPU capability": torch.backends.cpu.get_cpu_capability(),
        "processor": processor(),
    }


def processor() -> str:
    """The CPU's model name and its widest vector instructions (from /proc/cpuinfo on Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({widest})"


def counts(verdicts: pd.DataFrame) -> dict:
    """How many ranges held, how many statements held, and how many of the statements that held in every
    seed of the claims study also held here."""
    if verdicts.empty:
        return {
            "ranges": 0,
            "ranges_inside": 0,
            "statements": 0,
            "statements_held": 0,
            "every_seed_statements": 0,
            "every_seed_statements_held": 0,
        }
    ranges = verdicts[verdicts["kind"] == "range"]
    said = verdicts[verdicts["kind"] == "statement"]
    every = said[said["holds"] == said["n"]]
    return {
        "ranges": len(ranges),
        "ranges_inside": int(ranges["inside"].sum()),
        "statements": len(said),
        "statements_held": int(said["inside"].sum()),
        "every_seed_statements": len(every),
        "every_seed_statements_held": int(every["inside"].sum()),
    }


def write_report(verdicts: pd.DataFrame, seconds: dict[str, float], out: Path) -> None:
    summary = counts(verdicts)
    n = int(verdicts["n"].max()) if not verdicts.empty else 0
    lines = [
        "# Notebook check",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings().items()),
        "",
        "Executed: " + ", ".join(f"{name} ({s:.0f} s)" for name, s in seconds.items()),
        "",
        f"* quoted ranges: this run inside {summary['ranges_inside']} of {summary['ranges']}"
        + (f" (expected about {coverage(n):.0%} for the min – max of {n} seeds)" if n else ""),
        f"* statements: {summary['statements_held']} of {summary['statements']} held (the prose says in how "
        "many seeds each held)",
        f"* statements that held in every seed of the study: {summary['every_seed_statements_held']} of "
        f"{summary['every_seed_statements']} held here",
        "",
    ]
    if not verdicts.empty:
        lines += [
            "| notebook | kind | claim or statement | this run | expected | as stated |",
            "|:--|:--|:--|--:|:--|:--|",
        ]
        for row in verdicts.itertuples():
            if row.kind == "range":
                value, expected = f"{row.value:.2f}", f"{row.low:.2f} – {row.high:.2f}"
            else:
                value, expected = (
                    ("holds" if row.inside else "does not hold"),
                    f"held in {int(row.holds)} of {int(row.n)} seeds",
                )
            lines.append(
                f"| {row.notebook} | {row.kind} | {row.name} | {value} | {expected} | {'yes' if row.inside else 'no'} |"
            )
    (out / "check.md").write_text("\n".join(lines) + "\n")
    (out / "check.json").write_text(
        json.dumps(
            {"settings": settings(), "seconds": seconds, **summary, "verdicts": verdicts.to_dict("records")}, indent=2
        )
    )
    print("\n".join(lines[:9]))
