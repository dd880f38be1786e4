"""The README's library example runs as written, with its user-defined encoder."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re

import pandas as pd
import pytest

from conftest import REPO



def _seeds_script():
    """scripts/library_example_seeds.py, whose readme_example() this test shares (one place for it)."""
    spec = importlib.util.spec_from_file_location("library_example_seeds", REPO / "scripts" / "library_example_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SEEDS_SCRIPT = _seeds_script()
readme_example = SEEDS_SCRIPT.readme_example


@pytest.mark.slow
def test_readme_library_example_runs_with_a_user_defined_encoder_and_shows_oecl_above_simclr():
    code = readme_example()
    assert "nn.Sequential(" in code and "ox.ContrastiveModel(encoder()" in code  # the user's own encoder
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)
    aurocs = {m: float(v) for m, v in SEEDS_SCRIPT.PRINTED.findall(printed.getvalue())}
    seeds = pd.read_csv(REPO / "results" / "library-example" / "seeds.csv").pivot(index="seed", columns="method",
                                                                                   values="auroc")
    smallest_gap = (seeds["oecl"] - seeds["simclr"]).min()
    assert smallest_gap > 0.1  # what the README says holds in every seed of the committed file
    assert aurocs["oecl"] - aurocs["simclr"] > smallest_gap / 2, aurocs  # and this run shows it
    table = namespace["table"]
    assert table["is_id"].sum() == 59 and len(table) == 599  # the whole digits test split: 59 zeros, 540 others


def library_example_summary() -> str:
    """The README's sentence about the example's range, from results/library-example/seeds.csv."""
    seeds = pd.read_csv(REPO / "results" / "library-example" / "seeds.csv")
    wide = seeds.pivot(index="seed", columns="method", values="auroc")
    gap = wide["oecl"] - wide["simclr"]
    return (f"over seeds 0–{len(wide) - 1} SimCLR gives {wide['simclr'].min():.2f}–{wide['simclr'].max():.2f} and "
            f"OECL {wide['oecl'].min():.2f}–{wide['oecl'].max():.2f}; OECL is above SimCLR by "
            f"{gap.min():.2f}–{gap.max():.2f} in {int((gap > 0).sum())} of {len(gap)} seeds")


def test_readme_quotes_the_library_example_results():
    assert library_example_summary() in " ".join((REPO / "README.md").read_text().split())


TABLE_MARKER = re.compile(r"<!-- results-table: (\S+) -->\n((?:\|.*\n)+)")


def test_readme_result_tables_are_what_the_results_files_hold():
    from ood_explain import sweeps

    tables = TABLE_MARKER.findall((REPO / "README.md").read_text())
    assert tables, "the README quotes no results table"
    for folder, quoted in tables:
        runs = sweeps.collect_results(REPO / folder)
        expected = sweeps.format_summary(sweeps.summarize(runs)).to_markdown()
        assert quoted.strip() == expected.strip(), f"README table of {folder} differs from its results files"
