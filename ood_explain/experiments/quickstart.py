"""The offline quickstart: SimCLR vs self-OECL vs OECL on scikit-learn's digits (one-vs-rest), with
random crops of scikit-learn's two sample photos as the OE set for OECL, over several seeds. No download,
a few minutes on two CPU cores."""

from __future__ import annotations

import time
from pathlib import Path

from ood_explain.core import methods
from ood_explain.experiments.runs import RunConfig
from ood_explain.experiments.sweeps import sweep

# The workers start the longest runs first (self-OECL ~38 s, OECL ~12 s, SimCLR ~8 s on 2 AVX2 cores: see
# workers.expected_cost); the table's columns follow the registry's order.
QUICKSTART_METHODS = [methods.SELF_OECL.name, methods.OECL.name, methods.SIMCLR.name]
# The digits are 8x8: 16 px keeps every pixel and costs a third of 28 px's convolutions (the notebooks' size),
# which is what brings the 27 runs to about 5 minutes on 2 cores without AVX-512.
IMAGE_SIZE = 16
COMMAND = "ood-explain quickstart"


def default_out(preset: str) -> Path:
    """The default folder: ``runs/quickstart`` for the lite preset, ``runs/quickstart-PRESET`` for another, so
    the runs of two presets never share a table."""
    return Path("runs/quickstart" if preset == "lite" else f"runs/quickstart-{preset}")


def quickstart(
    out: str | Path | None = None,
    classes: list[int] | None = None,
    data_root: str | None = None,
    preset: str = "lite",
    progress: bool = True,
    seeds: int | str | list[int] = 3,
    jobs: int = 1,
    restart: bool = False,
) -> Path:
    """Run the comparison and print the AUROC table (mean ± std over seeds, ``OUT/results.md``); returns the
    folder (``ood-explain quickstart`` then writes ``OUT/report.html`` when the notebooks extra is there).
    `out` defaults to :func:`default_out`; finished runs are reused only when made with the same settings
    (another preset's runs in `out` are refused; `restart` trains them again)."""
    started = time.perf_counter()
    out = Path(out) if out is not None else default_out(preset)
    base = RunConfig(
        dataset="digits", protocol="one-vs-rest", oe="photos", preset=preset, data_root=data_root, image_size=IMAGE_SIZE
    )
    header = (
        f"# Quickstart ({preset} preset): `{COMMAND}`\n\nscikit-learn digits at {IMAGE_SIZE} px, one-vs-rest; "
        "OECL's OE: crops of scikit-learn's sample photos; score: ‖mean of z over views‖ (higher = more ID). "
    )
    sweep(
        base,
        QUICKSTART_METHODS,
        out,
        classes if classes is not None else [0, 1, 3],
        seeds=seeds,
        jobs=jobs,
        progress=progress,
        header=header,
        restart=restart,
    )
    print("\n" + (Path(out) / "results.md").read_text())
    print(f"quickstart: {time.perf_counter() - started:.0f} s")
    return out


TITLE = "Quickstart: SimCLR vs self-OECL vs OECL on digits"
