"""``ood-explain classroom ...``: release the exercises, grade a class, export to nbgrader, time it."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ood_explain.core.machine import hardware, load_average, usable_cores
from ood_explain.teaching.classroom import assignments as assignments_module
from ood_explain.teaching.classroom import gradebook, grading, synthetic
from ood_explain.teaching.classroom.sandbox import Limits, landlock_abi


def add_commands(commands: argparse._SubParsersAction) -> None:
    from ood_explain.tools.cli import positive_finite_float, positive_int  # the CLI's own argument types

    classroom = commands.add_parser("classroom", help="release the exercises, grade a class's notebooks, report")
    sub = classroom.add_subparsers(dest="classroom_command", required=True)
    source_help = "folder of the solution notebooks (default: the repository's notebooks/exercises/solutions)"

    release = sub.add_parser("release", help="write the student version of the exercises and SUBMIT.md")
    release.add_argument("exercises", nargs="*", help="ex01 ... ex04 or full names (default: all)")
    release.add_argument("--out", type=Path, required=True, help="folder for the students' notebooks")
    release.add_argument("--source", type=Path, default=None, help=source_help)
    release.set_defaults(func=command_release)

    grade = sub.add_parser("grade", help="grade a folder or .zip of submissions into a gradebook and a report")
    grade.add_argument("submissions", type=Path, help="folder (nbgrader's submitted/, flat, per student) or .zip")
    grade.add_argument("--out", type=Path, required=True, help="folder for grades.csv, gradebook.csv, report.html")
    grade.add_argument("--jobs", type=positive_int, default=usable_cores(), help="notebooks graded side by side")
    grade.add_argument("--cell-timeout", type=positive_int, default=60, help="seconds per cell (default 60)")
    grade.add_argument("--notebook-timeout", type=positive_int, default=300, help="seconds per notebook (default 300)")
    grade.add_argument(
        "--memory-gb", type=positive_finite_float, default=4.0, help="address space per notebook (default 4 GiB)"
    )
    grade.add_argument("--cpu-seconds", type=positive_int, default=300, help="CPU time per kernel (default 300)")
    grade.add_argument("--source", type=Path, default=None, help=source_help)
    grade.set_defaults(func=command_grade)

    nbgrader = sub.add_parser("nbgrader", help="copy the solution notebooks into an nbgrader course's source/")
    nbgrader.add_argument("--course", type=Path, required=True, help="the nbgrader course folder")
    nbgrader.add_argument("--source", type=Path, default=None, help=source_help)
    nbgrader.set_defaults(func=command_nbgrader)

    timing = sub.add_parser("timing", help="grade a synthetic class: serial, --jobs N, and nbgrader if installed")
    timing.add_argument("--students", type=positive_int, default=30, help="students (x every exercise; default 30)")
    timing.add_argument("--jobs", type=positive_int, default=2, help="workers of the side-by-side run (default 2)")
    timing.add_argument("--out", type=Path, default=None, help="write the figures to OUT/timing.json")
    timing.add_argument("--keep", type=Path, default=None, help="copy each run's grades folder to KEEP/<run>")
    timing.set_defaults(func=command_timing)


def command_release(args: argparse.Namespace) -> None:
    paths = assignments_module.release(args.out, args.exercises, args.source)
    print(f"wrote {len(paths) - 1} notebooks and {paths[-1].name} to {args.out}")


def _options(args: argparse.Namespace) -> grading.Options:
    limits = Limits(memory_bytes=int(args.memory_gb * (1 << 30)), cpu_seconds=args.cpu_seconds)
    return grading.Options(args.cell_timeout, args.notebook_timeout, limits)


def grade_folder(
    submissions: Path, out: Path, options: grading.Options, jobs: int, source: Path | None, show: bool = True
) -> list[grading.Result]:
    """Grade `submissions` into `out` (cache in ``out/.cache``); returns the results."""
    from tqdm.auto import tqdm

    assignments = assignments_module.load_assignments(source)
    found = grading.collect(submissions, assignments)
    if not found:
        raise ValueError(f"no .ipynb files in {submissions}")
    out.mkdir(parents=True, exist_ok=True)
    protected = grading.protected_paths(submissions, out, source or assignments_module.default_source())

    def progress(done, total):
        return tqdm(done, total=total, desc="grading", unit="notebook", disable=not show or total == 0)

    results = grading.grade_class(found, assignments, out / ".cache", options, jobs, protected, progress)
    gradebook.write_all(results, assignments, out)
    return results


def summary(results: list[grading.Result], seconds: float) -> str:
    sent = [r for r in results if r.file]
    cached = sum(r.cached for r in sent)
    statuses = Counter(r.status for r in results)
    tampered = sum(bool(r.tampering) for r in results)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    return (
        f"graded {len(sent)} files of {len({r.student for r in results})} students in {seconds:.0f} s "
        f"({cached} unchanged, from the cache): {parts}; {tampered} with tampered check cells"
    )


def command_grade(args: argparse.Namespace) -> None:
    if landlock_abi() == 0:
        print("note: this kernel has no Landlock: student code can write wherever you can (limits still hold)")
    start = time.monotonic()
    results = grade_folder(args.submissions, args.out, _options(args), args.jobs, args.source)
    print(summary(results, time.monotonic() - start))
    print(f"gradebook: {args.out / 'gradebook.csv'} · report: {args.out / 'report.html'}")


def command_nbgrader(args: argparse.Namespace) -> None:
    for assignment in assignments_module.load_assignments(args.source).values():
        path = assignments_module.nbgrader_source(args.course, assignment)
        print(f"{path}  ({assignment.points:g} points)")
    print(f"then, in {args.course}: nbgrader generate_assignment NAME; after collecting: nbgrader autograde NAME")


def nbgrader_autograde(course: Path, submissions: list[synthetic.SyntheticSubmission]) -> float:
    """Seconds that nbgrader's own generate_assignment + autograde take on `submissions` in `course`."""
    assignments = assignments_module.load_assignments()
    names = sorted({s.assignment for s in submissions})
    for name in names:
        assignments_module.nbgrader_source(course, assignments[name])
    config = course / "nbgrader_config.py"
    settings = f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.ExecutePreprocessor.timeout = 60\n"
    config.write_text(settings)
    # nbgrader runs `alembic` from PATH: the interpreter's own bin folder first
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    run = {"cwd": course, "check": True, "capture_output": True, "env": {**os.environ, "PATH": path}}
    for name in names:
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force"], **run)  # type: ignore[call-overload]
    for s in submissions:
        target = course / "submitted" / s.student / s.assignment / f"{s.assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s.data)
    start = time.monotonic()
    for name in names:
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", name, "--force"], **run)  # type: ignore[call-overload]
    return time.monotonic() - start


def command_timing(args: argparse.Namespace) -> None:
    assignments = assignments_module.load_assignments()
    class_ = synthetic.class_of(args.students, assignments)
    import torch

    figures: dict[str, float | int | str] = {
        "notebooks": len(class_),
        "students": args.students,
        "machine": hardware(torch.device("cpu")),
        "load_before": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="ood-explain-timing-") as folder:
        root = Path(folder)
        synthetic.write(class_, root / "submissions")
        for label, jobs in (("serial", 1), (f"jobs_{args.jobs}", args.jobs)):
            out = root / f"grades-{label}"
            start = time.monotonic()
            grade_folder(root / "submissions", out, grading.Options(), jobs, None, show=False)
            figures[f"{label}_s"] = round(time.monotonic() - start, 1)
            print(f"ood-explain classroom grade, {label}: {figures[f'{label}_s']} s for {len(class_)} notebooks")
            if args.keep:
                shutil.copytree(out, args.keep / label, dirs_exist_ok=True)
        try:
            import nbgrader  # noqa: F401
        except ImportError:
            print("nbgrader is not installed (pip install nbgrader): its autograde was not timed")
        else:
            figures["nbgrader_autograde_s"] = round(nbgrader_autograde(root / "course", class_), 1)
            print(f"nbgrader autograde: {figures['nbgrader_autograde_s']} s for the same notebooks")
    serial, parallel = figures["serial_s"], figures[f"jobs_{args.jobs}_s"]
    line = f"side by side ({args.jobs} jobs) is {float(serial) / float(parallel):.2f}x faster than serial"
    if "nbgrader_autograde_s" in figures:
        line += f"; {float(figures['nbgrader_autograde_s']) / float(parallel):.2f}x faster than nbgrader autograde"
    print(line)
    figures["load_after"] = load_average()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "timing.json").write_text(json.dumps(figures, indent=1) + "\n")
