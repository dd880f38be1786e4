"""Write the setup cell (:func:`ood_explain.teaching.notebook.setup_cell`) as the first code cell of every
notebook and exercise solution: replace it where it is there, insert it before the first code cell where
not, and drop the parameter cells' old ``env = nb.setup()`` line. Run after a version change; then
``ood-explain classroom release`` to regenerate the student exercises."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from ood_explain.teaching.notebook import SETUP_MARKER, setup_cell

REPO = Path(__file__).resolve().parents[1]
OLD_SETUP = "env = nb.setup()  # torch threads (OOD_EXPLAIN_THREADS, default 1) and seeds"
LOCKED = {"grade": False, "locked": True, "solution": False, "schema_version": 3, "task": False}


def sync(path: Path) -> bool:
    """Put the setup cell first in `path`; True when the file changed."""
    notebook = nbformat.read(path, as_version=4)
    before = nbformat.writes(notebook)
    codes = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if codes and SETUP_MARKER in codes[0].source:
        codes[0].source = setup_cell()
    else:
        cell = nbformat.v4.new_code_cell(setup_cell())
        if notebook.nbformat_minor < 5:  # cell ids came with nbformat 4.5
            cell.pop("id", None)
        if path.parent.name == "solutions":
            cell.metadata["nbgrader"] = {**LOCKED, "grade_id": f"{path.name.split('_')[0]}-install"}
        notebook.cells.insert(notebook.cells.index(codes[0]) if codes else len(notebook.cells), cell)
    for cell in codes:
        cell.source = "\n".join(line for line in cell.source.split("\n") if line.strip() != OLD_SETUP)
    after = nbformat.writes(notebook)
    if after != before:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
    return after != before


if __name__ == "__main__":
    paths = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
        (REPO / "notebooks" / "exercises" / "solutions").glob("*.ipynb")
    )
    changed = [path.relative_to(REPO) for path in paths if sync(path)]
    print("\n".join(f"updated {path}" for path in changed) or "every notebook has the current setup cell")
    sys.exit(0)
