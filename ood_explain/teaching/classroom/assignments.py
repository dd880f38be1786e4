"""The exercises as assignments: tasks with ids and points, read from the solution notebooks, and the
student version generated from them.

The solution notebooks (``notebooks/exercises/solutions/*_solution.ipynb``) are the one source. Every
cell carries nbgrader's metadata (``"nbgrader": {"grade_id", "points", "solution", "grade", "locked",
"schema_version": 3}``), so a teacher can put them in an nbgrader course as they are:

* a *solution cell* (``"solution": true``) defines the function of one task; the answer sits between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers), the ``# TODO`` hint above it;
* a *check cell* (``"grade": true, "points": P``, locked) is ``ok = check_NAME(NAME)``: the grade id of
  the task, its points, the check and the function it grades are all read from it;
* every other cell is locked.

:func:`student_version` replaces each answer with ``raise NotImplementedError`` (nbgrader's own
``generate_assignment`` gives the same cells with its ``# YOUR CODE HERE`` stub), clears outputs and
turns the solutions' introduction into the students' one.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOLUTION_SUFFIX = "_solution.ipynb"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

HOW_IT_WORKS = (
    "**How it works.** Fill in each cell marked `TODO`, then run the check below it. It prints ✅ when your "
    "answer is right, or ❌ with what is still wrong. Until you answer, the checks say *not yet*: the notebook "
    "still runs from top to bottom. Leave the check cells as they are: grading runs its own copy of every check."
)
SOLUTIONS_NOTE = "**Solutions.** Every TODO is filled in; each check prints ✅."

SUBMIT_NOTE = """# How to submit

1. Open each notebook in JupyterLab (or Colab), fill in every cell marked `TODO` and run the check
   below it until it prints ✅.
2. Save the notebook (Ctrl+S) and upload the `.ipynb` file as it is: do not rename it, and upload one
   file per exercise.
3. Grading runs your notebook from top to bottom in a fresh kernel, then runs its own copy of each
   check against the functions you defined. Editing or deleting a check cell does not change your grade
   (it is reported to your teacher), and an answer that only works after running cells out of order does
   not count: use Kernel › Restart Kernel and Run All Cells before you submit.

Exercises and points:
"""


class AssignmentError(ValueError):
    """A solution notebook that does not follow the layout above."""


@dataclass(frozen=True)
class Task:
    """One graded task: the check cell `grade_id`, its `points`, the `function` the student defines and
    the `check` (a function of :mod:`ood_explain.teaching.exercises`) that grades it."""

    grade_id: str
    points: float
    function: str
    check: str
    check_source: str

    @property
    def answer_id(self) -> str:
        return f"{self.grade_id}-answer"


@dataclass(frozen=True)
class Assignment:
    """One exercise notebook: its `name` (``ex01_nt_xent``), the solution notebook and its tasks."""

    name: str
    solution: Path
    tasks: tuple[Task, ...]
    grade_ids: frozenset[str]  # every cell's grade id (to recognise the notebook's submissions)
    locked_sources: frozenset[str] = frozenset()  # the locked code cells as handed out (:func:`normal_source`)

    @property
    def points(self) -> float:
        return sum(task.points for task in self.tasks)

    @property
    def notebook_name(self) -> str:
        """The student's file name, ``ex01_nt_xent.ipynb``."""
        return f"{self.name}.ipynb"


def default_source() -> Path:
    """The repository's ``notebooks/exercises/solutions`` (the package is used from a clone)."""
    return Path(__file__).resolve().parents[3] / "notebooks" / "exercises" / "solutions"


def read_notebook(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_grade_id(cell: dict[str, Any]) -> str | None:
    meta = cell.get("metadata", {})
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def check_call(source: str) -> tuple[str, str] | None:
    """``(check, function)`` when `source` is a check cell ``ok = check_NAME(NAME)``, else None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], ast.Assign):
        return None
    call = body[0].value
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id.startswith("check_")
        and len(call.args) == 1
        and isinstance(call.args[0], ast.Name)
    ):
        return call.func.id, call.args[0].id
    return None


def _task(cell: dict[str, Any], path: Path) -> Task:
    grade_id, source = cell_grade_id(cell), cell_source(cell)
    call = check_call(source)
    points = cell["metadata"]["nbgrader"].get("points")
    if grade_id is None or call is None or not isinstance(points, (int, float)) or points <= 0:
        raise AssignmentError(
            f"{path.name}: a graded cell must be `ok = check_NAME(NAME)` with a grade_id and positive points, "
            f"got grade_id={grade_id!r}, points={points!r}: {source[:60]!r}"
        )
    return Task(grade_id, float(points), function=call[1], check=call[0], check_source=source)


def load_assignment(path: Path) -> Assignment:
    """The assignment of one solution notebook (its tasks in notebook order)."""
    path = Path(path)
    if not path.name.endswith(SOLUTION_SUFFIX):
        raise AssignmentError(f"{path}: a solution notebook's name ends with {SOLUTION_SUFFIX}")
    cells = read_notebook(path)["cells"]
    tasks = tuple(_task(cell, path) for cell in cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade"))
    answers = {cell_grade_id(cell) for cell in cells if cell.get("metadata", {}).get("nbgrader", {}).get("solution")}
    for task in tasks:
        if task.answer_id not in answers:
            raise AssignmentError(f"{path.name}: task {task.grade_id} has no solution cell {task.answer_id!r}")
    if not tasks:
        raise AssignmentError(f"{path.name}: no graded cell (nbgrader metadata 'grade': true)")
    grade_ids = frozenset(grade_id for grade_id in map(cell_grade_id, cells) if grade_id is not None)
    locked = frozenset(
        normal_source(cell_source(cell))
        for cell in cells
        if cell.get("cell_type") == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("locked")
    )
    return Assignment(path.name[: -len(SOLUTION_SUFFIX)], path, tasks, grade_ids, locked)


def normal_source(source: str) -> str:
    """A cell's source without trailing spaces and surrounding blank lines: what an edit must change."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def load_assignments(source: Path | None = None) -> dict[str, Assignment]:
    """Every assignment of `source` (a folder of solution notebooks), by name, in name order."""
    source = Path(source) if source is not None else default_source()
    paths = sorted(source.glob(f"*{SOLUTION_SUFFIX}")) if source.is_dir() else []
    if not paths:
        raise AssignmentError(
            f"no solution notebooks (*{SOLUTION_SUFFIX}) in {source}: pass the folder "
            "notebooks/exercises/solutions of a clone of the ood-explain repository"
        )
    return {assignment.name: assignment for assignment in map(load_assignment, paths)}


def select(assignments: dict[str, Assignment], names: list[str] | None) -> list[Assignment]:
    """The named assignments (``ex01`` or ``ex01_nt_xent``), all of them for none."""
    if not names:
        return list(assignments.values())
    chosen = []
    for name in names:
        matches = [a for a in assignments.values() if a.name == name or a.name.split("_")[0] == name]
        if len(matches) != 1:
            raise AssignmentError(f"unknown exercise {name!r}: choose from {', '.join(assignments)}")
        chosen.append(matches[0])
    return chosen


# ------------------------------------------------------------------------------ the student version


def strip_solution(source: str) -> str:
    """`source` with every BEGIN/END SOLUTION block replaced by ``raise NotImplementedError``."""
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        if line.strip() == BEGIN:
            if inside:
                raise AssignmentError(f"nested {BEGIN!r}")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + "raise NotImplementedError")
        elif line.strip() == END:
            if not inside:
                raise AssignmentError(f"{END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise AssignmentError(f"{BEGIN!r} without {END!r}")
    return "\n".join(out)


def _student_markdown(text: str) -> str:
    text = re.sub(r"^(# .*?) \(solutions\)$", r"\1", text, count=1, flags=re.MULTILINE)
    text = text.replace(SOLUTIONS_NOTE, HOW_IT_WORKS).replace("](../../", "](../")
    return re.sub(r"\n*See also \[the exercise\]\([^)]*\)\.\s*$", "", text)


def _as_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def student_version(assignment: Assignment) -> dict[str, Any]:
    """The notebook students get: answers removed, outputs cleared, nbgrader metadata kept."""
    notebook = copy.deepcopy(read_notebook(assignment.solution))
    for cell in notebook["cells"]:
        source = cell_source(cell)
        if cell["cell_type"] == "markdown":
            cell["source"] = _as_lines(_student_markdown(source))
            continue
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            if BEGIN not in source:
                raise AssignmentError(f"{assignment.solution.name}: solution cell without {BEGIN!r}: {source[:60]!r}")
            source = strip_solution(source)
        elif BEGIN in source:
            raise AssignmentError(f"{assignment.solution.name}: {BEGIN!r} in a cell not marked as a solution")
        cell["source"] = _as_lines(source)
        cell["outputs"], cell["execution_count"] = [], None
    return notebook


def write_notebook(notebook: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def submit_note(assignments: list[Assignment]) -> str:
    lines = [
        f"- `{a.notebook_name}`: {a.points:g} points ({', '.join(f'{t.function} {t.points:g}' for t in a.tasks)})"
        for a in assignments
    ]
    return SUBMIT_NOTE + "\n".join(lines) + "\n"


def release(out: Path, names: list[str] | None = None, source: Path | None = None) -> list[Path]:
    """Write the student version of the named exercises (all by default) and ``SUBMIT.md`` into `out`."""
    chosen = select(load_assignments(source), names)
    out = Path(out)
    paths = [write_notebook(student_version(a), out / a.notebook_name) for a in chosen]
    (out / "SUBMIT.md").write_text(submit_note(chosen), encoding="utf-8")
    return [*paths, out / "SUBMIT.md"]


def nbgrader_source(course: Path, assignment: Assignment) -> Path:
    """Copy the solution notebook into an nbgrader course's ``source/<name>/<name>.ipynb`` (as it is)."""
    target = Path(course) / "source" / assignment.name / assignment.notebook_name
    return write_notebook(read_notebook(assignment.solution), target)
