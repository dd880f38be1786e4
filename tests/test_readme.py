"""The README's library example runs as written, with its user-defined encoder."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from conftest import REPO

MARKER = "<!-- library-example: run by tests/test_readme.py -->"


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow
def test_readme_library_example_runs_with_a_user_defined_encoder():
    code = readme_example()
    assert "nn.Sequential(" in code and "ox.ContrastiveModel(encoder" in code  # the user's own encoder
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)
    auroc = float(re.search(r"AUROC of ‖mean z‖ over 5 views: ([0-9.]+)", printed.getvalue()).group(1))
    assert 0.0 <= auroc <= 1.0
    table = namespace["table"]
    assert table["is_id"].sum() == 59 and len(table) == 599  # the whole digits test split: 59 zeros, 540 others


TABLE_MARKER = re.compile(r"<!-- results-table: (\S+) -->\n((?:\|.*\n)+)")


def test_readme_result_tables_are_what_the_results_files_hold():
    from ood_explain import sweeps

    tables = TABLE_MARKER.findall((REPO / "README.md").read_text())
    assert tables, "the README quotes no results table"
    for folder, quoted in tables:
        runs = sweeps.collect_results(REPO / folder)
        expected = sweeps.format_summary(sweeps.summarize(runs)).to_markdown()
        assert quoted.strip() == expected.strip(), f"README table of {folder} differs from its results files"
