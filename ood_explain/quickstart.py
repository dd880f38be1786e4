"""The offline quickstart: SimCLR vs self-OECL vs OECL on scikit-learn's digits (one-vs-rest), with
random crops of scikit-learn's two sample photos as the OE set for OECL, over several seeds. No download,
a few minutes on two CPU cores."""

from __future__ import annotations

import time
from pathlib import Path

from . import methods
from .experiments import RunConfig
from .sweeps import sweep
from .viz import write_comparison_report

QUICKSTART_METHODS = [methods.SIMCLR.name, methods.SELF_OECL.name, methods.OECL.name]
COMMAND = "ood-explain quickstart"


def quickstart(out: str | Path = "runs/quickstart", classes: list[int] | None = None,
               data_root: str | None = None, preset: str = "lite", progress: bool = True,
               seeds: int | str | list[int] = 3, jobs: int = 1) -> Path:
    """Run the comparison, print the AUROC table (mean ± std over seeds) and write ``OUT/report.html``;
    returns the report path."""
    started = time.perf_counter()
    base = RunConfig(dataset="digits", protocol="one-vs-rest", oe="photos", preset=preset, data_root=data_root)
    header = (f"# Quickstart ({preset} preset): `{COMMAND}`\n\nscikit-learn digits one-vs-rest; OECL's OE: crops "
              "of scikit-learn's sample photos; score: ‖mean of z over views‖ (higher = more ID). ")
    sweep(base, QUICKSTART_METHODS, out, classes if classes is not None else [0, 1, 3], seeds=seeds, jobs=jobs,
          progress=progress, header=header)
    print("\n" + (Path(out) / "results.md").read_text())
    report = write_comparison_report(out, title="Quickstart: SimCLR vs self-OECL vs OECL on digits")
    print(f"report: {report}  ({time.perf_counter() - started:.0f} s)")
    return report
