"""Grade a class: find the submissions, run each in a confined worker, grade every task with the
package's own checks, and cache the results by content.

Accepted layouts (mixed freely, or inside a ``.zip``): nbgrader's ``submitted/<student>/<assignment>/
*.ipynb``; a flat folder of ``<student>_<assignment>.ipynb`` (also a learning-management system's
"download all" names such as ``smithjane_1234_5678_ex01_nt_xent-1.ipynb``); one folder per student
holding ``<assignment>.ipynb``. The assignment is the exercise name (``ex01_nt_xent``) found in the file
name, or in a folder name.

Nothing a submission does stops the class: each gets a status (:data:`SUBMISSION_STATUSES`), and every
task of a graded one a task status (:data:`TASK_STATUSES`).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ood_explain.teaching.classroom import worker
from ood_explain.teaching.classroom.assignments import Assignment, Task, cell_grade_id, cell_source, normal_source
from ood_explain.teaching.classroom.sandbox import Limits

SUBMISSION_STATUSES = {
    "graded": "run and graded",
    "empty": "the file is empty",
    "invalid-notebook": "the file is not a notebook (not valid JSON, or no cells)",
    "wrong-assignment": "the notebook is another exercise",
    "unknown-assignment": "no exercise name in the file name",
    "duplicate": "an older file of the same student and exercise (the newest is graded)",
    "timeout": "the notebook ran longer than its time limit",
    "grader-error": "the grader could not run the notebook",
    "not-submitted": "no file from this student for this exercise",
}
TASK_STATUSES = {
    "correct": "the check passed",
    "wrong": "the check said not yet",
    "unanswered": "the TODO is still open",
    "missing": "the function is not defined",
    "timeout": "its cell ran longer than the cell time limit",
    "memory-limit": "its cell ran out of memory",
    "crashed": "its cell killed the kernel",
    "not-graded": "the submission was not graded (see its status)",
}
UNANSWERED = {"todo-open", "returned-none"}
PATCHABLE = {"exercises", "ood_explain", "losses", "metrics", "augment", "F", "torch", "np", "builtins"}


@dataclass
class Submission:
    """One file: who sent it, for which exercise (None: not recognised), its bytes."""

    student: str
    assignment: str | None
    file: str
    data: bytes
    mtime: float = 0.0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class TaskResult:
    task: str
    function: str
    score: float
    max_score: float
    status: str
    mistake: str = ""
    message: str = ""


@dataclass
class Result:
    """The grade of one submission (what grades.csv, the feedback page and the report are made of)."""

    student: str
    assignment: str
    file: str
    sha256: str
    status: str
    message: str = ""
    tasks: list[TaskResult] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tasks)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tasks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        tasks = [TaskResult(**t) for t in data.pop("tasks")]
        return cls(**data, tasks=tasks)


@dataclass(frozen=True)
class Options:
    """Time limits (seconds) per cell and per notebook, and the sandbox's limits."""

    cell_timeout: int = 60
    notebook_timeout: int = 300
    limits: Limits = Limits()


# ------------------------------------------------------------------------------ finding submissions


def _safe_extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            path = (target / member.filename).resolve()
            if target.resolve() not in path.parents and path != target.resolve():
                raise ValueError(f"{archive.name}: refusing {member.filename!r} (outside the archive's folder)")
        zipped.extractall(target)


def _identify(relative: Path, names: list[str]) -> tuple[str, str | None]:
    """(student, assignment) of a file at `relative` below the submissions' root."""
    folders = relative.parts[:-1]
    student, assignment = _named(re.sub(r"-\d+$", "", relative.stem), names)  # an LMS adds -1 to a re-upload
    if "submitted" in folders:  # nbgrader: submitted/<student>/<assignment>/<file>
        below = folders[folders.index("submitted") + 1 :]
        student = below[0] if below else student
        assignment = below[1] if len(below) > 1 and below[1] in names else assignment
    elif assignment is None:  # a folder per assignment: <assignment>/<student>.ipynb
        assignment = next((f for f in reversed(folders) if f in names), None)
    elif not student and folders:  # a folder per student: <student>/<assignment>.ipynb
        student = folders[0]
    return _student_id(student or relative.stem), assignment


def _student_id(name: str) -> str:
    """Drop what an LMS adds: Moodle's ``_assignsubmission_file_``, Canvas's ``_LATE`` and submission id."""
    name = re.sub(r"_assignsubmission_file_?$", "", name)
    canvas = re.fullmatch(r"(.+?)(?:_LATE)?_(\d+)_(\d+)", name)
    return f"{canvas.group(1)}_{canvas.group(2)}" if canvas else name


def _named(stem: str, names: list[str]) -> tuple[str, str | None]:
    """Split ``<student>_<assignment>`` (the longest exercise name the stem ends with or contains)."""
    for name in sorted(names, key=len, reverse=True):
        index = stem.find(name)
        if index >= 0:
            return stem[:index].rstrip("_- ."), name
    return stem, None


def collect(root: Path, assignments: dict[str, Assignment]) -> list[Submission]:
    """Every ``.ipynb`` below `root` (a folder or a .zip), identified; checkpoints and hidden files skipped."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no submissions at {root}: pass a folder or a .zip of .ipynb files")
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise ValueError(f"{root} is neither a folder nor a zip file of submissions")
        with tempfile.TemporaryDirectory(prefix="ood-explain-zip-") as folder:
            _safe_extract(root, Path(folder))
            return collect(Path(folder), assignments)
    names = list(assignments)
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith((".", "__MACOSX")) for part in relative.parts):
            continue
        if path.is_file() and path.suffix == ".ipynb":
            student, assignment = _identify(relative, names)
            found.append(Submission(student, assignment, str(relative), path.read_bytes(), path.stat().st_mtime))
        elif path.is_file() and path.suffix == ".zip":
            for inner in collect(path, assignments):
                found.append(Submission(inner.student, inner.assignment, f"{relative}/{inner.file}", inner.data))
    return found


# ------------------------------------------------------------------------------ reading a notebook


def parse(data: bytes) -> list[dict[str, Any]] | str:
    """The notebook's cells, or the status that says why there are none."""
    if not data.strip():
        return "empty"
    try:
        notebook = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "invalid-notebook"
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) and "cell_type" in c for c in cells):
        return "invalid-notebook"
    return cells


def _defines(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _code_cells(cells: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(cell number, starting at 1 as JupyterLab counts) of every code cell."""
    return [(number, cell) for number, cell in enumerate(cells, 1) if cell.get("cell_type") == "code"]


def answer_cell(cells: list[dict[str, Any]], task: Task) -> int | None:
    """The number of the cell that answers `task`: the one with its grade id, else the last that defines
    the function."""
    code = _code_cells(cells)
    for number, cell in code:
        if cell_grade_id(cell) == task.answer_id:
            return number
    defining = [number for number, cell in code if task.function in _defines(cell_source(cell))]
    return defining[-1] if defining else None


def which_assignment(cells: list[dict[str, Any]], assignments: dict[str, Assignment]) -> str | None:
    """The exercise the notebook's cells belong to: by their grade ids, else by the functions defined."""
    ids = {cell_grade_id(cell) for cell in cells} - {None}
    by_ids = [a.name for a in assignments.values() if ids & a.grade_ids]
    if len(by_ids) == 1:
        return by_ids[0]
    defined = set().union(*(_defines(cell_source(c)) for _, c in _code_cells(cells)))
    by_functions = [a.name for a in assignments.values() if {t.function for t in a.tasks} & defined]
    return by_functions[0] if len(by_functions) == 1 else None


def tampering(cells: list[dict[str, Any]], assignment: Assignment) -> list[str]:
    """What the student did to the check cells or the checks (it never changes the grade)."""
    sources = {number: cell_source(cell) for number, cell in _code_cells(cells)}
    grade_ids = {number: cell_grade_id(cell) for number, cell in _code_cells(cells)}
    found = []
    for task in assignment.tasks:
        pristine = normal_source(task.check_source)
        tagged = [n for n, grade_id in grade_ids.items() if grade_id == task.grade_id]
        same = [n for n, source in sources.items() if normal_source(source) == pristine]
        if not tagged and not same:
            found.append(f"{task.grade_id}: the check cell was deleted")
        elif len(set(tagged) | set(same)) > 1:
            found.append(f"{task.grade_id}: the check cell is duplicated (cells {sorted(set(tagged) | set(same))})")
        for number in tagged:
            if normal_source(sources[number]) != pristine:
                edited = sources[number].strip()[:80]
                found.append(f"{task.grade_id}: the check cell (cell {number}) was edited to {edited!r}")
    for number, source in sources.items():  # a locked cell as handed out (the setup cell) is not suspicious
        if normal_source(source) not in assignment.locked_sources:
            found += [f"cell {number}: {what}" for what in _suspicious(source, assignment)]
    return found


def _suspicious(source: str, assignment: Assignment) -> list[str]:
    """Redefined checks, ``ok = True``, patched library modules, in one cell's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    checks = {t.check for t in assignment.tasks}
    patchable = set(PATCHABLE)
    for node in ast.walk(tree):  # the names the cell gives the library's modules: `import ... as ex`
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            patchable |= {(a.asname or a.name).split(".")[0] for a in node.names}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name.startswith("check_"):
            found.append(f"redefines the check function `{node.name}`")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and (target.id in checks or target.id.startswith("check_")):
                    found.append(f"assigns to the check function `{target.id}`")
                elif isinstance(target, ast.Name) and target.id == "ok" and isinstance(node.value, ast.Constant):
                    found.append(f"sets `ok = {node.value.value!r}` by hand")
                elif isinstance(target, ast.Attribute):
                    base = target.value
                    while isinstance(base, ast.Attribute):
                        base = base.value
                    if isinstance(base, ast.Name) and base.id in patchable:
                        found.append(f"patches `{ast.unparse(target)}`")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"setattr", "exec"}:
            found.append(f"calls `{node.func.id}(...)`")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in {"importlib", "builtins", "ctypes", "gc"} for m in modules):
                found.append(f"imports {', '.join(modules)}")
    return found


# ------------------------------------------------------------------------------ grading one submission


def _task_results(
    cells: list[dict[str, Any]], assignment: Assignment, run: dict[str, Any], cell_timeout: int
) -> tuple[list[TaskResult], list[str]]:
    checks, errors = run["checks"] or {}, run["errors"]
    crashed = {c["index"]: c for c in run["crashes"]}
    notes = [f"cell {n}: {c['reason']}; the notebook was re-run without it" for n, c in crashed.items()]
    notes += [
        f"cell {n} ran longer than {cell_timeout} s and was interrupted"
        if e["ename"] in worker.TIMEOUT_ERRORS
        else f"cell {n} raised {e['ename']}: {e['evalue']}"
        for n, e in errors.items()
    ]
    results = []
    for task in assignment.tasks:
        number = answer_cell(cells, task)
        error = errors.get(str(number), {})
        found = checks.get(task.grade_id, {})
        if number in crashed and not crashed[number]["hung"]:
            status, message = (
                "crashed",
                f"the cell defining `{task.function}` (cell {number}): {crashed[number]['reason']}",
            )
        elif number in crashed or error.get("ename") in worker.TIMEOUT_ERRORS:
            status = "timeout"
            message = f"the cell defining `{task.function}` (cell {number}) ran longer than {cell_timeout} s"
        elif error.get("ename") == "MemoryError":
            status, message = "memory-limit", f"the cell defining `{task.function}` (cell {number}) ran out of memory"
        elif not found.get("defined"):
            status, message = "missing", f"`{task.function}` is not defined after the notebook ran"
        elif found["passed"]:
            status, message = "correct", found["text"]
        else:
            status = "unanswered" if found.get("mistake") in UNANSWERED else "wrong"
            message = found["text"]
        score = task.points if status == "correct" else 0.0
        results.append(
            TaskResult(task.grade_id, task.function, score, task.points, status, found.get("mistake") or "", message)
        )
    return results, notes


def _not_graded(submission: Submission, assignment: Assignment | None, status: str, message: str) -> Result:
    tasks = [
        TaskResult(t.grade_id, t.function, 0.0, t.points, "not-graded", "", message)
        for t in (assignment.tasks if assignment else ())
    ]
    return Result(
        submission.student, submission.assignment or "", submission.file, submission.sha256, status, message, tasks
    )


def _run_worker(job: dict[str, Any], timeout: float) -> dict[str, Any] | str:
    """The worker's result, or "timeout" / an error text."""
    process = subprocess.Popen(
        [sys.executable, str(Path(worker.__file__))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=job["workdir"],
        start_new_session=True,  # its own process group: the kernel goes with it on a timeout
    )
    try:
        out, err = process.communicate(json.dumps(job).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return "timeout"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # a kernel left behind
        except ProcessLookupError:
            pass
    lines = out.decode(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {process.returncode}"]
        return f"the grader failed: {tail[0][:300]}"
    return json.loads(lines[-1])


def grade_submission(
    submission: Submission, assignments: dict[str, Assignment], options: Options, protected: list[Path]
) -> Result:
    """Grade one file; never raises for anything the file holds."""
    assignment = assignments.get(submission.assignment or "")
    if assignment is None:
        names = ", ".join(assignments)
        return _not_graded(submission, None, "unknown-assignment", f"no exercise name ({names}) in {submission.file!r}")
    cells = parse(submission.data)
    if isinstance(cells, str):
        return _not_graded(submission, assignment, cells, SUBMISSION_STATUSES[cells])
    actual = which_assignment(cells, assignments)
    if actual is not None and actual != assignment.name:
        return _not_graded(
            submission, assignment, "wrong-assignment", f"this notebook is {actual}, sent as {assignment.name}"
        )
    tampered = tampering(cells, assignment)
    workdir = Path(tempfile.mkdtemp(prefix="ood-explain-grade-"))
    try:
        job = {
            "workdir": str(workdir),
            "cells": [{"index": n, "source": cell_source(c)} for n, c in _code_cells(cells)],
            "tasks": [{"grade_id": t.grade_id, "function": t.function, "check": t.check} for t in assignment.tasks],
            "cell_timeout": options.cell_timeout,
            "limits": asdict(options.limits),
            "protected": [str(p) for p in protected],
        }
        run = _run_worker(job, options.notebook_timeout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if isinstance(run, str) or run["checks"] is None:
        if run == "timeout":
            status, message = "timeout", f"the notebook ran longer than {options.notebook_timeout} s"
        else:
            status, message = "grader-error", run if isinstance(run, str) else "the kernel died in the grading cell"
        result = _not_graded(submission, assignment, status, message)
    else:
        tasks, notes = _task_results(cells, assignment, run, options.cell_timeout)
        result = Result(submission.student, assignment.name, submission.file, submission.sha256, "graded", "", tasks)
        result.notes, result.seconds = notes, run["seconds"]
    result.tampering = tampered
    return result


# ------------------------------------------------------------------------------ grading a class


def fingerprint(assignments: dict[str, Assignment], options: Options) -> str:
    """Changes when the grader (this package and the checks), the assignments or the limits change: then
    the cache is not used."""
    digest = hashlib.sha256()
    classroom = Path(__file__).resolve().parent
    grader = [*sorted(classroom.glob("*.py")), classroom.parent / "exercises.py"]
    for path in [*grader, *(a.solution for a in assignments.values())]:
        digest.update(path.read_bytes())
    digest.update(json.dumps(asdict(options), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def latest_only(submissions: list[Submission]) -> tuple[list[Submission], list[Submission]]:
    """(the newest file of each student and exercise, the older ones)."""
    newest: dict[tuple[str, str | None], Submission] = {}
    for s in sorted(submissions, key=lambda s: (s.mtime, s.file)):
        if s.assignment is not None:
            newest[(s.student, s.assignment)] = s
    keep = [s for s in submissions if s.assignment is None or newest[(s.student, s.assignment)] is s]
    return keep, [s for s in submissions if s not in keep]


def grade_class(
    submissions: list[Submission],
    assignments: dict[str, Assignment],
    cache: Path,
    options: Options = Options(),
    jobs: int = 1,
    protected: Sequence[Path] = (),
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
) -> list[Result]:
    """Grade every submission (side by side with `jobs` workers), reading unchanged ones from `cache`;
    adds a "not-submitted" result for every student × exercise with no file. Sorted, so the same files
    give the same gradebook."""
    cache = Path(cache) / fingerprint(assignments, options)
    cache.mkdir(parents=True, exist_ok=True)
    keep, older = latest_only(submissions)
    results = [
        _not_graded(s, assignments.get(s.assignment or ""), "duplicate", SUBMISSION_STATUSES["duplicate"])
        for s in older
    ]
    todo = []
    for s in keep:
        cached = (
            cache
            / f"{s.sha256}-{hashlib.sha256(f'{s.student}/{s.assignment}/{s.file}'.encode()).hexdigest()[:12]}.json"
        )
        if cached.is_file():
            result = Result.from_json(json.loads(cached.read_text()))
            result.cached = True
            results.append(result)
        else:
            todo.append((s, cached))

    def one(item: tuple[Submission, Path]) -> Result:
        submission, cached = item
        result = grade_submission(submission, assignments, options, list(protected))
        cached.write_text(json.dumps(result.to_json()))
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, item) for item in todo]
        done = as_completed(futures)
        for future in progress(done, len(futures)) if progress else done:
            results.append(future.result())
    students = sorted({r.student for r in results if r.assignment})  # not those of unrecognised files only
    seen = {(r.student, r.assignment) for r in results if r.status != "duplicate"}
    for student in students:
        for assignment in assignments.values():
            if (student, assignment.name) not in seen:
                missing = Submission(student, assignment.name, "", b"")
                results.append(_not_graded(missing, assignment, "not-submitted", SUBMISSION_STATUSES["not-submitted"]))
    return sorted(results, key=lambda r: (r.student, r.assignment, r.status == "duplicate", r.file))


def protected_paths(submissions_root: Path, out: Path, source: Path) -> list[Path]:
    """What student code may never read or write: the submissions, the grades, the solutions."""
    return [Path(submissions_root).resolve(), Path(out).resolve(), Path(source).resolve()]
